import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';

/** One message waiting to be delivered, in the order it was appended. */
export interface OutboxEntry {
  seq: number;
  topic: string;
  payload: unknown;
}

/** Journal lines: `{"s":seq,"t":topic,"p":payload}` appends a message, `{"a":seq}` marks everything up to seq delivered. */
type Line = { s: number; t: string; p: unknown } | { a: number };

/** Compact when the journal holds this many lines of delivered messages. */
const COMPACT_AFTER = 256;

/**
 * Store-and-forward journal for messages that must survive a lost link, an
 * agent restart and a power cut (DESIGN §1: a device that was offline is
 * healed on reconnect). Append-only JSON lines, each fsynced before
 * `append()` resolves, so a message the caller was told is queued is on disk.
 * Delivery is acknowledged in order by appending an ack line; compaction
 * rewrites the pending tail into a temporary file, fsyncs it and renames it
 * over the journal, so a cut at any moment leaves either the old or the new
 * file. A torn last line (the power went during a write) is ignored with a
 * warning: `append()` had not resolved for it, so nobody was promised it.
 */
export class Outbox {
  private pending: OutboxEntry[] = [];
  private lastSeq = 0;
  private deliveredLines = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private changed?: () => void;

  private constructor(
    private readonly file: string,
    private handle: fs.FileHandle | undefined,
    private readonly log: Logger,
  ) {}

  /** Opens (or creates) the journal at `file`, recovering what a crash left. */
  static async open(file: string, log: Logger): Promise<Outbox> {
    await fs.rm(`${file}.tmp`, { force: true });
    let text = '';
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const handle = await fs.open(file, 'a', 0o600);
    const box = new Outbox(file, handle, log);
    const damaged = box.replay(text);
    if (damaged) await box.compact();
    return box;
  }

  /**
   * An outbox kept only in memory: same order and acknowledgement, no
   * journal. For simulated devices, where thousands of fsynced files would
   * measure the disk, not the fleet; a real device always uses {@link open}.
   */
  static inMemory(log: Logger): Outbox {
    return new Outbox('', undefined, log);
  }

  /** Rebuilds the queue from the journal; true when a line had to be dropped. */
  private replay(text: string): boolean {
    const lines = text.split('\n');
    const tail = lines.pop();
    let damaged = false;
    if (tail) {
      this.log.warn({ file: this.file, bytes: tail.length }, 'outbox: ignoring a truncated last line (interrupted write)');
      damaged = true;
    }
    let delivered = 0;
    const entries: OutboxEntry[] = [];
    for (const [i, raw] of lines.entries()) {
      if (raw === '') continue;
      let line: Line;
      try {
        line = JSON.parse(raw) as Line;
      } catch {
        this.log.warn({ file: this.file, line: i + 1 }, 'outbox: skipping an unreadable line');
        damaged = true;
        continue;
      }
      if ('a' in line && typeof line.a === 'number') delivered = Math.max(delivered, line.a);
      else if ('s' in line && typeof line.s === 'number' && typeof line.t === 'string') {
        entries.push({ seq: line.s, topic: line.t, payload: line.p });
        this.lastSeq = Math.max(this.lastSeq, line.s);
      }
    }
    this.pending = entries.filter((e) => e.seq > delivered);
    this.deliveredLines = lines.length - this.pending.length;
    this.lastSeq = Math.max(this.lastSeq, delivered);
    return damaged;
  }

  /** Messages not yet delivered. */
  get size(): number {
    return this.pending.length;
  }

  /** The oldest message not yet delivered. */
  peek(): OutboxEntry | undefined {
    return this.pending[0];
  }

  /** Called after each append, so a sender can wake up. */
  onAppend(listener: () => void): void {
    this.changed = listener;
  }

  /** Queues a message durably: resolves once it is fsynced. */
  append(topic: string, payload: unknown): Promise<OutboxEntry> {
    return this.serial(async () => {
      const entry = { seq: ++this.lastSeq, topic, payload };
      await this.write({ s: entry.seq, t: topic, p: payload });
      this.pending.push(entry);
      this.changed?.();
      return entry;
    });
  }

  /** Marks every message up to `seq` delivered; compacts the journal now and then. */
  ack(seq: number): Promise<void> {
    return this.serial(async () => {
      const before = this.pending.length;
      this.pending = this.pending.filter((e) => e.seq > seq);
      if (this.pending.length === before) return;
      await this.write({ a: seq });
      this.deliveredLines += before - this.pending.length + 1;
      if (this.handle && this.deliveredLines >= COMPACT_AFTER) await this.compact();
    });
  }

  async close(): Promise<void> {
    await this.serial(async () => this.handle?.close());
  }

  private async write(line: Line): Promise<void> {
    if (!this.handle) return;
    await this.handle.write(`${JSON.stringify(line)}\n`);
    await this.handle.datasync();
  }

  /** Rewrites the journal with only the pending messages: tmp file, fsync, rename, fsync the directory. */
  private async compact(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const body = this.pending.map((e) => `${JSON.stringify({ s: e.seq, t: e.topic, p: e.payload })}\n`).join('');
    // Keep the sequence moving forward across compactions, even when nothing is pending.
    const marker = `${JSON.stringify({ a: (this.pending[0]?.seq ?? this.lastSeq + 1) - 1 })}\n`;
    const fh = await fs.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(marker + body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.handle?.close();
    await fs.rename(tmp, this.file);
    await fsyncDir(path.dirname(this.file));
    this.handle = await fs.open(this.file, 'a', 0o600);
    this.deliveredLines = 1;
    this.log.debug({ pending: this.pending.length }, 'outbox compacted');
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }
}

/** Makes a rename durable: fsync the directory that holds it. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
