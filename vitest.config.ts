import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

// Tests import our packages from source, so `vitest` needs no build; tests that
// spawn real `kernex` processes run the build that `npm test` makes first.
export default defineConfig({
  resolve: {
    alias: {
      '@kernex/shared': src('./shared/src/index.ts'),
      '@kernex/broker': src('./broker/src/index.ts'),
      // The simulator runs worker threads, which load built JavaScript: tests use its build.
      '@kernex/agent/sim': src('./agent/dist/sim/index.js'),
      '@kernex/agent': src('./agent/src/index.ts'),
    },
  },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['*/src/**/*.test.ts', 'control/bench/src/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', '**/node_modules/**', '**/dist/**'],
        },
      },
      {
        extends: true,
        test: {
          name: 'int',
          include: ['*/src/**/*.int.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**'],
          globalSetup: ['./control/src/test-support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Polled state (presence written in batches, the orchestrator's tick) can take
          // seconds on a loaded 2-core CI machine; 1 s, vitest's default, flakes there.
          expect: { poll: { timeout: 15_000, interval: 50 } },
        },
      },
    ],
  },
});
