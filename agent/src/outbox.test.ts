import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox } from './outbox.js';

/** Captures warn lines so tests can check that damage is reported. */
function recordingLog(): { log: pino.Logger; warnings: string[] } {
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg as string) });
  return { log, warnings };
}

describe('Outbox (real files)', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-outbox-'));
    file = path.join(dir, 'outbox.jsonl');
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('keeps messages in order and delivers them after a restart', async () => {
    const a = await Outbox.open(file, recordingLog().log);
    await a.append('kx/d/events', { n: 1 });
    await a.append('kx/d/events', { n: 2 });
    await a.append('kx/d/events', { n: 3 });
    await a.ack(a.peek()!.seq);
    await a.close();

    const b = await Outbox.open(file, recordingLog().log);
    expect(b.size).toBe(2);
    expect(b.peek()).toMatchObject({ topic: 'kx/d/events', payload: { n: 2 } });
    await b.ack(b.peek()!.seq);
    expect(b.peek()!.payload).toEqual({ n: 3 });
    await b.close();
  });

  it('creates the journal readable by its owner only', async () => {
    const a = await Outbox.open(file, recordingLog().log);
    await a.append('t', {});
    await a.close();
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
  });

  it('ignores a truncated last line with a warning and appends on a clean line after it', async () => {
    const a = await Outbox.open(file, recordingLog().log);
    await a.append('t', { n: 1 });
    await a.close();
    // A power cut in the middle of the second write.
    await fs.appendFile(file, '{"s":2,"t":"t","p":{"n"');

    const { log, warnings } = recordingLog();
    const b = await Outbox.open(file, log);
    expect(warnings).toContain('outbox: ignoring a truncated last line (interrupted write)');
    expect(b.size).toBe(1);
    await b.append('t', { n: 3 });
    await b.close();

    const c = await Outbox.open(file, recordingLog().log);
    expect([c.peek()!.payload]).toEqual([{ n: 1 }]);
    await c.ack(c.peek()!.seq);
    expect(c.peek()!.payload).toEqual({ n: 3 });
    expect(c.size).toBe(1);
    await c.close();
  });

  it('skips an unreadable line in the middle and keeps the rest', async () => {
    await fs.writeFile(file, '{"s":1,"t":"t","p":1}\n\u0000\u0000garbage\n{"s":2,"t":"t","p":2}\n');
    const { log, warnings } = recordingLog();
    const b = await Outbox.open(file, log);
    expect(warnings).toContain('outbox: skipping an unreadable line');
    expect(b.size).toBe(2);
    await b.close();
  });

  it('compacts delivered messages away and keeps sequence numbers increasing', async () => {
    const a = await Outbox.open(file, recordingLog().log);
    for (let i = 1; i <= 300; i++) {
      const e = await a.append('t', { i });
      await a.ack(e.seq);
    }
    const last = await a.append('t', { i: 301 });
    await a.close();
    expect(last.seq).toBe(301);
    const lines = (await fs.readFile(file, 'utf8')).trim().split('\n');
    expect(lines.length).toBeLessThan(100);
    await expect(fs.stat(`${file}.tmp`)).rejects.toThrow();

    const b = await Outbox.open(file, recordingLog().log);
    expect(b.size).toBe(1);
    expect(b.peek()).toEqual({ seq: 301, topic: 't', payload: { i: 301 } });
    expect((await b.append('t', {})).seq).toBe(302);
    await b.close();
  });

  it('discards a compaction that never got renamed', async () => {
    const a = await Outbox.open(file, recordingLog().log);
    await a.append('t', { n: 1 });
    await a.close();
    await fs.writeFile(`${file}.tmp`, '{"a":1}\n');
    const b = await Outbox.open(file, recordingLog().log);
    expect(b.peek()!.payload).toEqual({ n: 1 });
    await b.close();
    await expect(fs.stat(`${file}.tmp`)).rejects.toThrow();
  });
});
