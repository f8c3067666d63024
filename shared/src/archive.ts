import path from 'node:path';
import { Transform } from 'node:stream';
import { ArchiveTooLargeError, UnsafeEntryError } from './errors.js';

/**
 * The safe-tar rules of DESIGN §4, as pure functions: the server applies them
 * while an upload streams in, the agent again while it extracts. Neither side
 * trusts the other; both refuse the same archives.
 *
 * The rules make the physical layout of an extracted bundle equal to its
 * lexical layout: no entry path or link target may pass through a symlink of
 * the archive, so checking paths as strings is enough (the trick of
 * `s -> .` then `t -> s/..` cannot escape).
 */

/** Size and count limits an archive must keep. */
export interface ArchiveLimits {
  /** Largest single entry, bytes. */
  maxEntryBytes: number;
  /**
   * Largest unpacked archive, bytes: bounds both the sum of entry sizes and
   * every byte the gzip stream inflates to (headers and padding after the
   * tar end marker included), see {@link inflatedBound}.
   */
  maxTotalBytes: number;
  /** Most entries. */
  maxEntries: number;
}

/** Defaults: generous for edge software, small enough that a hostile archive cannot fill a disk. */
export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxEntryBytes: 512 * 1024 * 1024,
  maxTotalBytes: 2 * 1024 * 1024 * 1024,
  maxEntries: 10_000,
});

/** The part of a tar header the rules look at (tar-stream's header fits). */
export interface ArchiveEntryHeader {
  name: string;
  /**
   * tar-stream's type: file, directory, symlink, link, character-device, block-device, fifo, ...;
   * null for a typeflag it does not know. Only file, contiguous-file, directory, symlink and
   * link are accepted (an allow-list); absent means file.
   */
  type?: string | null;
  size?: number | null;
  linkname?: string | null;
}

/**
 * zlib output chunk size for unpacking bundles, bytes. Zlib's default (16 KiB)
 * makes a gzip bomb cost five times the CPU to inflate up to the bound.
 */
export const INFLATE_CHUNK_BYTES = 128 * 1024;

/**
 * A pass-through for the inflated (tar) bytes that fails with
 * {@link ArchiveTooLargeError} once they pass `limits.maxTotalBytes`. Entry
 * sizes alone miss what the tar parser skips (zero blocks after the end
 * marker, header blocks), so a gzip bomb of zeros would otherwise inflate
 * without bound; put this between gunzip and the tar parser.
 */
export function inflatedBound(limits: Readonly<ArchiveLimits>): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > limits.maxTotalBytes) return cb(new ArchiveTooLargeError(limits.maxTotalBytes));
      cb(null, chunk);
    },
  });
}

/** What the archive holds once {@link ArchiveGuard} has accepted an entry. */
export interface AcceptedEntry {
  /** Normalised relative path, no leading `./`, no trailing `/`. */
  path: string;
  kind: 'file' | 'directory' | 'symlink' | 'hardlink';
  size: number;
  /** For a symlink: the target as written; for a hardlink: the normalised path of the file it names. */
  target?: string;
}

const MAX_PATH = 1024;

/**
 * Normalises an entry name to a relative POSIX path, or says why it cannot be one.
 * `./a/b/` → `a/b`; `/etc/x`, `a/../../x`, `a\\b`, names with NUL → refused.
 */
export function normaliseEntryPath(name: string): { path: string } | { reason: string } {
  if (name.length === 0) return { reason: 'empty name' };
  if (name.length > MAX_PATH) return { reason: `name longer than ${MAX_PATH} characters` };
  if (name.includes('\0')) return { reason: 'NUL in name' };
  if (name.includes('\\')) return { reason: 'backslash in name' };
  if (name.startsWith('/')) return { reason: 'absolute path' };
  if (name.split('/').includes('..')) return { reason: "'..' in path" };
  const p = path.posix.normalize(name).replace(/\/+$/, '');
  if (p === '' || p === '.') return { path: '.' };
  return { path: p };
}

/** `a/b/c` → [`a`, `a/b`]: the directories a path passes through. */
function parents(p: string): string[] {
  const parts = p.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

/**
 * Checks entries one by one, in archive order, keeping what it needs to judge
 * the next (entry count, total size, symlinks and files seen). Throws
 * {@link UnsafeEntryError} at the first entry it refuses. No I/O.
 */
export class ArchiveGuard {
  private total = 0;
  private count = 0;
  private readonly symlinks = new Set<string>();
  private readonly files = new Set<string>();
  private readonly dirs = new Set<string>();
  /** Every path a symlink target resolves through, so a later symlink cannot sit on it. */
  private readonly targetPaths = new Set<string>();

  constructor(private readonly limits: Readonly<ArchiveLimits> = DEFAULT_ARCHIVE_LIMITS) {}

  /** Sum of accepted entry sizes so far. */
  get totalBytes(): number {
    return this.total;
  }

  /** True if the archive held a regular file (or a hardlink to one) at `p` (normalised). */
  hasFile(p: string): boolean {
    return this.files.has(p);
  }

  check(header: ArchiveEntryHeader): AcceptedEntry {
    const name = header.name;
    const refuse = (reason: string): never => {
      throw new UnsafeEntryError(name, reason);
    };
    const norm = normaliseEntryPath(name);
    if ('reason' in norm) return refuse(norm.reason);
    const p = norm.path;

    this.count += 1;
    if (this.count > this.limits.maxEntries) refuse(`more than ${this.limits.maxEntries} entries`);

    // tar-stream reports a typeflag it does not know as null: refused below, never taken for a file.
    const type = header.type === undefined ? 'file' : header.type;
    const size = header.size ?? 0;
    if (!Number.isFinite(size) || size < 0) refuse('bad size');
    if (size > this.limits.maxEntryBytes) refuse(`entry larger than ${this.limits.maxEntryBytes} bytes`);
    if (this.total + size > this.limits.maxTotalBytes) refuse(`archive larger than ${this.limits.maxTotalBytes} bytes unpacked`);

    // No entry may be written through a symlink of the archive.
    for (const dir of parents(p)) {
      if (this.symlinks.has(dir)) refuse(`path passes through symlink '${dir}'`);
      if (this.files.has(dir)) refuse(`path passes through file '${dir}'`);
    }
    const seen = this.files.has(p) || this.symlinks.has(p);
    if (seen || (this.dirs.has(p) && type !== 'directory')) refuse('duplicate entry');

    let accepted: AcceptedEntry;
    switch (type) {
      case 'file':
      case 'contiguous-file':
        accepted = { path: p, kind: 'file', size };
        if (p === '.') refuse('file at the bundle root');
        this.files.add(p);
        break;
      case 'directory':
        accepted = { path: p, kind: 'directory', size: 0 };
        this.dirs.add(p);
        break;
      case 'symlink': {
        accepted = { path: p, kind: 'symlink', size: 0, target: this.checkSymlink(p, header.linkname, refuse) };
        this.symlinks.add(p);
        break;
      }
      case 'link': {
        const target = header.linkname ?? '';
        const t = normaliseEntryPath(target);
        if ('reason' in t) return refuse(`hardlink target '${target}': ${t.reason}`);
        if (!this.files.has(t.path)) refuse(`hardlink target '${target}' is not an earlier file of the bundle`);
        accepted = { path: p, kind: 'hardlink', size: 0, target: t.path };
        this.files.add(p);
        break;
      }
      case 'character-device':
      case 'block-device':
        return refuse('device file');
      case 'fifo':
        return refuse('fifo');
      default:
        return refuse(type === null ? 'unknown entry type' : `entry type '${type}'`);
    }
    this.total += accepted.size;
    return accepted;
  }

  private checkSymlink(p: string, linkname: string | null | undefined, refuse: (reason: string) => never): string {
    const target = linkname ?? '';
    if (target === '') refuse('symlink with no target');
    if (target.includes('\0') || target.includes('\\')) refuse(`symlink target '${target}' has a forbidden character`);
    if (target.startsWith('/')) refuse(`symlink to absolute path '${target}'`);
    if (p === '.') refuse('symlink at the bundle root');
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(p), target));
    if (resolved === '..' || resolved.startsWith('../')) refuse(`symlink '${target}' leaves the bundle`);
    // Walk the target as the kernel would: every step must be a plain path of the archive.
    const steps = [...path.posix.dirname(p).split('/'), ...target.split('/')];
    let cur: string[] = [];
    for (const step of steps) {
      if (step === '' || step === '.') continue;
      if (step === '..') cur.pop();
      else cur = [...cur, step];
      const here = cur.join('/');
      if (here === '') continue;
      if (this.symlinks.has(here) || here === p) refuse(`symlink target passes through symlink '${here}'`);
      this.targetPaths.add(here);
    }
    // A symlink may not sit where an earlier target's walk went: it would change that walk.
    if (this.targetPaths.has(p)) refuse('symlink sits on the path of an earlier symlink target');
    return target;
  }
}

/** The text the server signs for a bundle (DESIGN §4). */
export function bundleSigningText(name: string, version: string, sha256: string): string {
  return `kernex-bundle:${name}:${version}:${sha256}`;
}
