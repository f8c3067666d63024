import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BundleState } from './bundle-state.js';

describe('BundleState', () => {
  let dir: string;
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('keeps every change made at once, and reads them back after a restart', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-state-'));
    const file = path.join(dir, 'bundles', 'state.json');
    const state = await BundleState.open(file);
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => state.setExecution(`e${i}`, { state: 'received', handled: ['deploy'], at: 0 })),
      state.setInstalled('app', { current: '1.0.0' }),
    ]);
    const reopened = await BundleState.open(file);
    expect(reopened.executions()).toHaveLength(20);
    expect(reopened.installed).toEqual({ app: { current: '1.0.0' } });
  });

  it('names a state file it cannot read', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-state-'));
    const file = path.join(dir, 'state.json');
    await fs.writeFile(file, '{not json');
    await expect(BundleState.open(file)).rejects.toThrow(/bundle state .*state.json is unreadable/);
  });
});
