import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DeviceKeyType } from '@kernex/shared';

/** Default directory of the simulator's key cache, under `cacheHome` ($XDG_CACHE_HOME) or ~/.cache. */
export function defaultKeyCacheDir(cacheHome?: string): string {
  const base = cacheHome || path.join(os.homedir(), '.cache');
  return path.join(base, 'kernex', 'sim-keys');
}

/**
 * The simulator's cache of device keys: one file per key type,
 * `{dir}/{type}.jsonl`, one PKCS#8 PEM (a JSON string) per line. Device `i`
 * of every run uses line `i`, so a second run against the same server is the
 * same fleet (registration is idempotent) and starts without making a key.
 * These keys are test material: the file is 0600 but never a real device's key.
 */
export class KeyPool {
  private constructor(
    private readonly file: string,
    private readonly pems: string[],
  ) {}

  static async open(dir: string, type: DeviceKeyType): Promise<KeyPool> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, `${type}.jsonl`);
    let text = '';
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const pems: string[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const pem = JSON.parse(line) as unknown;
        if (typeof pem === 'string' && pem.includes('PRIVATE KEY')) pems.push(pem);
      } catch {
        break; // a torn last line: keys from here on are made again
      }
    }
    if (pems.length > 0 && !text.endsWith('\n')) await fs.writeFile(file, pems.map((p) => `${JSON.stringify(p)}\n`).join(''), { mode: 0o600 });
    return new KeyPool(file, pems);
  }

  /** Keys in the cache. */
  get size(): number {
    return this.pems.length;
  }

  /** The first `n` cached keys; `undefined` where the cache has none yet. */
  take(n: number): (string | undefined)[] {
    return Array.from({ length: n }, (_, i) => this.pems[i]);
  }

  /** Appends keys made for indexes past the cache's end, in index order. */
  async add(made: ReadonlyMap<number, string>): Promise<void> {
    const fresh: string[] = [];
    for (let i = this.pems.length; made.has(i); i++) fresh.push(made.get(i)!);
    if (fresh.length === 0) return;
    this.pems.push(...fresh);
    await fs.appendFile(this.file, fresh.map((p) => `${JSON.stringify(p)}\n`).join(''), { mode: 0o600 });
  }
}
