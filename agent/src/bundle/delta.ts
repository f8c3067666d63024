import { createHash, createPublicKey, verify } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import {
  ArchiveGuard,
  DEFAULT_ARCHIVE_LIMITS,
  INFLATE_CHUNK_BYTES,
  indexSigningText,
  inflatedBound,
  installedMode,
  parseIndex,
  type ArchiveLimits,
  type FileIndex,
  type FileIndexEntry,
  UnsafeEntryError,
} from '@kernex/shared';
import tar from 'tar-stream';
import type { HttpClient } from '../device-http-client.js';

/** Why a delta was not used; the agent then fetches the full bundle (DESIGN §4). */
export class DeltaRefusedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DeltaRefusedError';
  }
}

/** Largest index a device reads, bytes (10,000 entries take about 2 MB). */
const MAX_INDEX_BYTES = 8 * 1024 * 1024;

/**
 * Fetches B's file index and checks the server's signature over
 * `kernex-index:{name}:{version}:{sha256 of the body}` and that it names B.
 */
export async function fetchIndex(o: {
  http: HttpClient;
  url: string;
  token: string;
  signature: string;
  serverPublicKeyPem: string;
  name: string;
  version: string;
  signal?: AbortSignal;
}): Promise<FileIndex> {
  const res = await o.http.stream(o.url, { headers: { authorization: `Bearer ${o.token}` }, signal: o.signal });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_INDEX_BYTES) {
      res.destroy();
      throw new DeltaRefusedError(`index larger than ${MAX_INDEX_BYTES} bytes`);
    }
    chunks.push(c);
  }
  if (res.statusCode !== 200) throw new DeltaRefusedError(`index answered ${res.statusCode}`);
  const body = Buffer.concat(chunks);
  const sha256 = createHash('sha256').update(body).digest('hex');
  let ok = false;
  try {
    ok = verify('sha256', Buffer.from(indexSigningText(o.name, o.version, sha256)), createPublicKey(o.serverPublicKeyPem), Buffer.from(o.signature, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw new DeltaRefusedError('index signature does not match the server key');
  const parsed = parseIndex(body.toString('utf8'));
  if ('reason' in parsed) throw new DeltaRefusedError(parsed.reason);
  if (parsed.index.name !== o.name || parsed.index.version !== o.version) throw new DeltaRefusedError(`index is of ${parsed.index.name}@${parsed.index.version}`);
  return parsed.index;
}

/** Hex sha256 of a file's content. */
async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/**
 * Builds B's tree in the empty-or-absent `dest` from the delta archive and
 * the kept tree of A (`fromDir`), as the signed index says: directories and
 * symlinks from the index, each file from the delta or, by sha256, from A.
 * The delta passes the shared safe-tar rules and may hold only regular files
 * the index names with their sha256 and size. Throws {@link DeltaRefusedError}.
 * The caller checks the result with {@link verifyTree} and removes `dest` on failure.
 */
export async function buildFromDelta(o: { delta: string; index: FileIndex; fromDir: string; dest: string; limits?: ArchiveLimits }): Promise<{ fromDelta: number; fromPrevious: number }> {
  const limits = o.limits ?? DEFAULT_ARCHIVE_LIMITS;
  const byPath = new Map(o.index.entries.map((e) => [e.path, e]));
  await fs.mkdir(o.dest, { recursive: false, mode: 0o700 });
  // Sorted paths put a directory before what it holds.
  for (const e of o.index.entries) {
    if (e.type === 'directory' && e.path !== '.') await fs.mkdir(path.join(o.dest, e.path), { mode: 0o700 });
  }
  const written = new Map<string, string>(); // sha256 → path in dest
  const guard = new ArchiveGuard(limits);
  const extract = tar.extract();
  const walk = async (): Promise<void> => {
    for await (const entry of extract) {
      const a = guard.check(entry.header);
      const want = byPath.get(a.path);
      if (a.kind !== 'file') throw new DeltaRefusedError(`delta entry '${a.path}' is a ${a.kind}, not a file`);
      if (!want || want.type !== 'file') throw new DeltaRefusedError(`delta entry '${a.path}' is not a file of the index`);
      if (a.size !== want.size) throw new DeltaRefusedError(`delta entry '${a.path}' has ${a.size} bytes, the index ${want.size}`);
      const target = path.join(o.dest, a.path);
      const h = createHash('sha256');
      // 'wx': never through something already there.
      await pipeline(
        entry,
        new Transform({
          transform(c: Buffer, _e, cb) {
            h.update(c);
            cb(null, c);
          },
        }),
        createWriteStream(target, { flags: 'wx', mode: 0o600 }),
      );
      if (h.digest('hex') !== want.sha256) throw new DeltaRefusedError(`delta entry '${a.path}' does not match its sha256 in the index`);
      written.set(want.sha256, a.path);
    }
  };
  const piped = pipeline(createReadStream(o.delta), createGunzip({ chunkSize: INFLATE_CHUNK_BYTES }), inflatedBound(limits), extract);
  const walked = walk().catch((err: unknown) => {
    extract.destroy(err as Error);
    throw err;
  });
  const results = await Promise.allSettled([walked, piped]);
  const reasons = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  const failure = reasons.find((r) => (r as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') ?? reasons[0];
  if (failure) {
    if (failure instanceof DeltaRefusedError) throw failure;
    // The shared safe-tar rules' own words for a path trick; anything else is a broken archive.
    throw new DeltaRefusedError(failure instanceof UnsafeEntryError ? failure.message : `delta unreadable: ${failure.message}`, { cause: failure });
  }

  let fromDelta = 0;
  let fromPrevious = 0;
  const previous = new PreviousTree(o.fromDir, o.index);
  for (const e of o.index.entries) {
    if (e.type !== 'file') continue;
    const target = path.join(o.dest, e.path);
    const inDelta = written.get(e.sha256!);
    if (inDelta === e.path) {
      fromDelta += 1;
    } else {
      const source = inDelta !== undefined ? path.join(o.dest, inDelta) : await previous.find(e);
      if (source === undefined) throw new DeltaRefusedError(`content of '${e.path}' is neither in the delta nor in version ${path.basename(o.fromDir)}`);
      await fs.copyFile(source, target, constants.COPYFILE_EXCL);
      if (inDelta === undefined) fromPrevious += 1;
    }
    await fs.chmod(target, installedMode('file', e.mode));
  }
  for (const e of o.index.entries) {
    if (e.type === 'symlink') await fs.symlink(e.target!, path.join(o.dest, e.path));
    else if (e.type === 'directory' && e.path !== '.') await fs.chmod(path.join(o.dest, e.path), installedMode('directory', e.mode));
  }
  return { fromDelta, fromPrevious };
}

/** A's kept tree, searched by content: the same path first, then any file of that size. */
class PreviousTree {
  private bySha: Map<string, string> | undefined;

  constructor(
    private readonly dir: string,
    private readonly index: FileIndex,
  ) {}

  async find(e: FileIndexEntry): Promise<string | undefined> {
    const same = path.join(this.dir, e.path);
    const st = await fs.lstat(same).catch(() => undefined);
    if (st?.isFile() && st.size === e.size && (await hashFile(same)) === e.sha256) return same;
    this.bySha ??= await this.scan();
    return this.bySha.get(e.sha256!);
  }

  /** Hashes A's regular files whose size some file of B has (symlinks never followed). */
  private async scan(): Promise<Map<string, string>> {
    const sizes = new Set(this.index.entries.filter((x) => x.type === 'file').map((x) => x.size));
    const out = new Map<string, string>();
    const walk = async (d: string): Promise<void> => {
      for (const ent of await fs.readdir(d, { withFileTypes: true })) {
        const p = path.join(d, ent.name);
        if (ent.isDirectory()) await walk(p);
        else if (ent.isFile() && sizes.has((await fs.lstat(p)).size)) out.set(await hashFile(p), p);
      }
    };
    await walk(this.dir);
    return out;
  }
}

/**
 * Checks that `dir` holds exactly the index's entries (DESIGN §4): each path
 * with its type, its mode as the agent installs it, its size and sha256 (a
 * symlink its target), and nothing else. Throws {@link DeltaRefusedError}.
 */
export async function verifyTree(dir: string, index: FileIndex): Promise<void> {
  const want = new Map(index.entries.filter((e) => e.path !== '.').map((e) => [e.path, e]));
  let seen = 0;
  const walk = async (rel: string): Promise<void> => {
    for (const name of await fs.readdir(path.join(dir, rel))) {
      const p = rel ? `${rel}/${name}` : name;
      const e = want.get(p);
      if (!e) throw new DeltaRefusedError(`rebuilt tree holds '${p}', which the index does not`);
      seen += 1;
      const full = path.join(dir, p);
      const st = await fs.lstat(full);
      const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      if (type !== e.type) throw new DeltaRefusedError(`'${p}' is a ${type}, the index says ${e.type}`);
      if (e.type === 'symlink') {
        if ((await fs.readlink(full)) !== e.target) throw new DeltaRefusedError(`symlink '${p}' does not point where the index says`);
        continue;
      }
      if ((st.mode & 0o7777) !== installedMode(e.type, e.mode)) throw new DeltaRefusedError(`'${p}' has mode ${(st.mode & 0o7777).toString(8)}, the index ${installedMode(e.type, e.mode).toString(8)}`);
      if (e.type === 'directory') await walk(p);
      else if (st.size !== e.size || (await hashFile(full)) !== e.sha256) throw new DeltaRefusedError(`'${p}' does not match its size and sha256 in the index`);
    }
  };
  await walk('');
  if (seen !== want.size) throw new DeltaRefusedError(`rebuilt tree holds ${seen} entries, the index ${want.size}`);
}
