import { createHash } from 'node:crypto';

/**
 * A bundle's file index (DESIGN §4 "Delta transfer"): every entry's path,
 * type, mode, size and sha256, as canonical JSON, signed by the server as
 * `kernex-index:{name}:{version}:{sha256 of the index}`. The agent checks a
 * tree rebuilt from a delta against it, entry for entry.
 */
export interface FileIndexEntry {
  /** Normalised relative path (the archive rules' form: no `./`, no trailing `/`). */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** Permission bits of the tar header (`mode & 0o7777`). */
  mode: number;
  /** Bytes; 0 for a directory or symlink. */
  size: number;
  /** Hex SHA-256 of the content; for a symlink, of its target text; absent for a directory. */
  sha256?: string;
  /** A symlink's target as written. */
  target?: string;
}

export interface FileIndex {
  name: string;
  version: string;
  /** Sorted by path (code units), each path once. */
  entries: FileIndexEntry[];
}

/** The text the server signs for a file index (DESIGN §4). */
export function indexSigningText(name: string, version: string, indexSha256: string): string {
  return `kernex-index:${name}:${version}:${indexSha256}`;
}

/** JSON with object keys sorted and no whitespace: one text per value, so its sha256 is stable. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value as object)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The canonical text of an index (entries sorted by path) and its sha256. */
export function serialiseIndex(index: FileIndex): { text: string; sha256: string } {
  const entries = [...index.entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const text = canonicalJson({ name: index.name, version: index.version, entries });
  return { text, sha256: createHash('sha256').update(text).digest('hex') };
}

/**
 * The mode the agent gives an entry on disk (DESIGN §4: set-id and group/other
 * write bits dropped; the owner may always read and write its own files):
 * what a tree checked against an index must show.
 */
export function installedMode(type: FileIndexEntry['type'], mode: number): number {
  const m = mode & 0o755;
  return type === 'directory' ? m | 0o700 : type === 'file' ? m | 0o600 : m;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Parses an index text as a device receives it; undefined with a reason when
 * it is not one (unknown fields, unsorted or duplicate paths, bad types).
 */
export function parseIndex(text: string): { index: FileIndex } | { reason: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { reason: 'index is not JSON' };
  }
  const o = v as FileIndex;
  if (!o || typeof o !== 'object' || typeof o.name !== 'string' || typeof o.version !== 'string' || !Array.isArray(o.entries)) return { reason: 'index lacks name, version or entries' };
  let last = '';
  for (const e of o.entries as unknown[]) {
    const x = e as FileIndexEntry;
    if (!x || typeof x !== 'object' || typeof x.path !== 'string' || x.path === '' || !Number.isInteger(x.mode) || !Number.isInteger(x.size) || x.size < 0) return { reason: 'index entry is malformed' };
    if (x.path <= last && last !== '') return { reason: `index paths unsorted or repeated at '${x.path}'` };
    last = x.path;
    if (x.type === 'file' && (typeof x.sha256 !== 'string' || !HEX64.test(x.sha256))) return { reason: `index file '${x.path}' has no sha256` };
    if (x.type === 'symlink' && typeof x.target !== 'string') return { reason: `index symlink '${x.path}' has no target` };
    if (x.type !== 'file' && x.type !== 'directory' && x.type !== 'symlink') return { reason: `index entry '${x.path}' has type '${String(x.type)}'` };
  }
  return { index: o };
}
