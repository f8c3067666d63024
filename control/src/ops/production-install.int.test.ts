import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCKERFILE = path.join(ROOT, 'control', 'Dockerfile');

/** What the image's runtime stage copies from the build stage: [source under the repo, destination under /app]. */
async function runtimeCopies(): Promise<Array<[string, string]>> {
  const text = await fs.readFile(DOCKERFILE, 'utf8');
  return [...text.matchAll(/^COPY --from=build \/src\/(\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]);
}

/** The production-only install the image runs (its prod-deps stage), so the test runs the same command. */
async function prodInstallCommand(): Promise<string> {
  const text = await fs.readFile(DOCKERFILE, 'utf8');
  const line = /^RUN (npm ci --omit=dev[^\n]*)$/m.exec(text)?.[1];
  if (!line) throw new Error('control/Dockerfile has no `RUN npm ci --omit=dev` line');
  return line.replace(/ && npm cache clean --force$/, '');
}

/**
 * No container engine here: this runs the server image's runtime layout for real. The
 * files its Dockerfile copies go into a clean directory, the production-only `npm ci`
 * of its prod-deps stage installs beside them, and its ENTRYPOINT starts a server that
 * must answer /readyz.
 */
describe('the server image entrypoint from a production-only install', () => {
  let app: string;
  let database: TestDatabase;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    app = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-prod-install-'));
    database = await createTestDatabase();
  });
  afterAll(async () => {
    if (server && server.proc.exitCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await database?.drop();
    await fs.rm(app, { recursive: true, force: true });
  });

  it('installs without dev dependencies and serves /readyz', { timeout: 600_000 }, async () => {
    // The prod-deps stage sees only the manifests; the runtime stage adds the built files.
    for (const f of ['package.json', 'package-lock.json', 'shared/package.json', 'broker/package.json', 'control/package.json', 'agent/package.json']) {
      await fs.mkdir(path.dirname(path.join(app, f)), { recursive: true });
      await fs.copyFile(path.join(ROOT, f), path.join(app, f));
    }
    // And the patches its install applies (postgres.js: porsager/postgres#1066, #1154, #1208).
    await fs.cp(path.join(ROOT, 'patches'), path.join(app, 'patches'), { recursive: true });
    const install = await prodInstallCommand();
    await run('sh', ['-c', `${install} --prefer-offline`], { cwd: app, timeout: 540_000, maxBuffer: 16 * 1024 * 1024 });
    for (const f of ['src/connection.js', 'cjs/src/connection.js']) {
      expect(await fs.readFile(path.join(app, 'node_modules', 'postgres', f), 'utf8'), f).toContain('Kernex patch');
    }
    for (const [from, to] of await runtimeCopies()) {
      await fs.cp(path.join(ROOT, from), path.join(app, to), { recursive: true });
    }
    // No dev dependencies: neither the compiler, the test runner nor our own @types (some libraries pull @types/node in at run time).
    for (const dev of ['typescript', 'vitest', '@types/cli-progress', '@types/tar-stream']) {
      await expect(fs.access(path.join(app, 'node_modules', dev)), dev).rejects.toThrow();
    }

    const entrypoint = /^ENTRYPOINT \["node", "([^"]+)"\]$/m.exec(await fs.readFile(DOCKERFILE, 'utf8'))?.[1];
    expect(entrypoint).toBe('control/bin/kernex.js');
    server = spawnServer(
      { DATABASE_URL: database.url, KERNEX_DATA_DIR: path.join(app, 'data'), KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', KERNEX_ADMIN_KEY: 'kx_prod_install_key', NODE_ENV: 'production' },
      ['server'],
      { bin: path.join(app, entrypoint!) },
    );
    const { httpPort } = await server.ready;
    const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { status: string }).status).toBe('ready');
    // The web console's built files are part of the runtime layout too.
    const console = await fetch(`http://127.0.0.1:${httpPort}/console/`);
    expect(console.status).toBe(200);
    expect(console.headers.get('content-type')).toContain('text/html');
  });
});
