import { gzipSync } from 'node:zlib';
import type { ArchiveLimits } from '../archive.js';
import { randomish } from './make-bundle.js';

/**
 * The hostile-archive table (DESIGN §4), as real `.tar.gz` bytes. One literal
 * table shared by the server's upload test (control/src/hostile/uploads.int.test.ts)
 * and the agent's extractor test (agent/src/bundle/extract.test.ts): both must
 * refuse every row but the accepted one, for the same reason.
 *
 * Headers are written by hand, not with tar-stream's packer, so a row can hold
 * what no honest packer writes: unknown typeflags, a size the data does not have.
 */

const MiB = 1024 * 1024;

/** The bounds both sides run the table with (server: KERNEX_MAX_BUNDLE_ENTRY_MB=4, KERNEX_MAX_BUNDLE_UNPACKED_MB=16). */
export const HOSTILE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({ maxEntryBytes: 4 * MiB, maxTotalBytes: 16 * MiB, maxEntries: 10_000 });

/** The environment that gives a `kernex server` {@link HOSTILE_LIMITS}; uploads themselves may be up to 64 MiB. */
export const HOSTILE_SERVER_ENV: Readonly<Record<string, string>> = Object.freeze({
  KERNEX_MAX_BUNDLE_MB: '64',
  KERNEX_MAX_BUNDLE_ENTRY_MB: '4',
  KERNEX_MAX_BUNDLE_UNPACKED_MB: '16',
});

interface RawEntry {
  name: string;
  /** The typeflag byte as a character: '0' file, '1' hardlink, '2' symlink, '3'/'4' devices, '5' directory, '6' fifo, anything else. */
  flag?: string;
  data?: Buffer;
  linkname?: string;
  mode?: number;
  /** Declared size, when it is not the data's (a header that lies). */
  size?: number;
}

const octal = (n: number, width: number): string => n.toString(8).padStart(width - 1, '0') + '\0';

/** One 512-byte ustar header. */
function header(e: RawEntry): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? 0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(e.size ?? e.data?.length ?? 0, 12), 124, 'ascii');
  h.write(octal(1_700_000_000, 12), 136, 'ascii');
  h.write(e.flag ?? '0', 156, 'ascii');
  if (e.linkname) h.write(e.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** Header, data, padding to the next block; no end marker (callers add {@link END}). */
function tarOf(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    if (e.data && e.data.length > 0) {
      parts.push(e.data, Buffer.alloc((512 - (e.data.length % 512)) % 512));
    }
  }
  return Buffer.concat(parts);
}

/** The tar end marker: two zero blocks. */
const END = Buffer.alloc(1024);

const gz = (b: Buffer): Buffer => gzipSync(b, { level: 1 });

const manifest: RawEntry = { name: 'manifest.json', data: Buffer.from(JSON.stringify({ name: 'hostile', version: '1.0.0', install: 'install.sh' })) };
const install: RawEntry = { name: 'install.sh', data: Buffer.from('#!/bin/sh\nexit 0\n'), mode: 0o755 };
/** A valid bundle with `extra` after its manifest and install script, ended. */
const bundleWith = (...extra: RawEntry[]): Buffer => gz(Buffer.concat([tarOf([manifest, install, ...extra]), END]));

/** One row: what the archive is, its bytes, and the reason both sides give (undefined: accepted). */
export interface HostileArchive {
  what: string;
  bytes: () => Buffer;
  /** Matches the server's 400 message and the agent's error alike. */
  refusal?: RegExp;
  /** The server's error code for the refusal. */
  code?: 'KX_BUNDLE_UNSAFE_ENTRY' | 'KX_BUNDLE_INVALID';
  /** The refusal comes while MiBs of the upload are still to come: the server must survive it. */
  streaming?: boolean;
}

const memo = (make: () => Buffer): (() => Buffer) => {
  let b: Buffer | undefined;
  return () => (b ??= make());
};

export const HOSTILE_ARCHIVES: readonly HostileArchive[] = [
  { what: 'an honest bundle (accepted by both)', bytes: memo(() => bundleWith({ name: 'lib/data.txt', data: Buffer.from('ok') })) },
  {
    what: 'an absolute path',
    bytes: memo(() => bundleWith({ name: '/etc/cron.d/kernex', data: Buffer.from('* * * * * root sh\n') })),
    refusal: /unsafe entry '\/etc\/cron\.d\/kernex': absolute path/,
    code: 'KX_BUNDLE_UNSAFE_ENTRY',
  },
  { what: "a '..' path", bytes: memo(() => bundleWith({ name: 'a/../../x', data: Buffer.from('x') })), refusal: /unsafe entry 'a\/\.\.\/\.\.\/x': '\.\.' in path/, code: 'KX_BUNDLE_UNSAFE_ENTRY' },
  { what: 'a symlink to an absolute path', bytes: memo(() => bundleWith({ name: 'etc', flag: '2', linkname: '/etc' })), refusal: /unsafe entry 'etc': symlink to absolute path/, code: 'KX_BUNDLE_UNSAFE_ENTRY' },
  { what: 'a symlink leaving the bundle', bytes: memo(() => bundleWith({ name: 'lib/up', flag: '2', linkname: '../../..' })), refusal: /unsafe entry 'lib\/up': symlink '\.\.\/\.\.\/\.\.' leaves the bundle/, code: 'KX_BUNDLE_UNSAFE_ENTRY' },
  { what: 'a hardlink leaving the bundle', bytes: memo(() => bundleWith({ name: 'h', flag: '1', linkname: '../../etc/shadow' })), refusal: /unsafe entry 'h': hardlink target/, code: 'KX_BUNDLE_UNSAFE_ENTRY' },
  { what: 'a hardlink to an absolute path', bytes: memo(() => bundleWith({ name: 'h', flag: '1', linkname: '/etc/shadow' })), refusal: /unsafe entry 'h': hardlink target '\/etc\/shadow': absolute path/, code: 'KX_BUNDLE_UNSAFE_ENTRY' },
  { what: 'a character device', bytes: memo(() => bundleWith({ name: 'null', flag: '3' })), refusal: /unsafe entry 'null': device file/, code: 'KX_BUNDLE_UNSAFE_ENTRY' },
  { what: 'a block device', bytes: memo(() => bundleWith({ name: 'sda', flag: '4' })), refusal: /unsafe entry 'sda': device file/, code: 'KX_BUNDLE_UNSAFE_ENTRY' },
  { what: 'a fifo', bytes: memo(() => bundleWith({ name: 'pipe', flag: '6' })), refusal: /unsafe entry 'pipe': fifo/, code: 'KX_BUNDLE_UNSAFE_ENTRY' },
  {
    what: "an unknown typeflag ('Z')",
    bytes: memo(() => bundleWith({ name: 'run.sh', flag: 'Z', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 })),
    refusal: /unsafe entry 'run\.sh': unknown entry type/,
    code: 'KX_BUNDLE_UNSAFE_ENTRY',
  },
  {
    what: "a GNU sparse entry ('S', not on the allow-list)",
    bytes: memo(() => bundleWith({ name: 'sparse.bin', flag: 'S', data: Buffer.from('x') })),
    refusal: /unsafe entry 'sparse\.bin': unknown entry type/,
    code: 'KX_BUNDLE_UNSAFE_ENTRY',
  },
  {
    what: 'an entry over the entry bound (5 MiB, bound 4 MiB)',
    bytes: memo(() => bundleWith({ name: 'big.bin', data: Buffer.alloc(5 * MiB) })),
    refusal: /unsafe entry 'big\.bin': entry larger than 4194304 bytes/,
    code: 'KX_BUNDLE_UNSAFE_ENTRY',
  },
  {
    what: 'a header announcing a 1 GiB entry, followed by MiBs',
    bytes: memo(() => gz(Buffer.concat([tarOf([manifest, install, { name: 'huge.bin', size: 1024 * MiB }]), randomish(6 * MiB)]))),
    refusal: /unsafe entry 'huge\.bin': entry larger than 4194304 bytes/,
    code: 'KX_BUNDLE_UNSAFE_ENTRY',
    streaming: true,
  },
  {
    what: 'a gzip bomb: an honest bundle, then 40 MiB of zeros after the end marker (bound 16 MiB)',
    bytes: memo(() => gzipSync(Buffer.concat([tarOf([manifest, install]), END, Buffer.alloc(40 * MiB)]), { level: 9 })),
    refusal: /archive inflates to more than 16777216 bytes/,
    code: 'KX_BUNDLE_INVALID',
  },
  { what: 'a body of 6 MiB that is not gzip', bytes: memo(() => randomish(6 * MiB)), refusal: /incorrect header check/, code: 'KX_BUNDLE_INVALID', streaming: true },
  {
    what: 'an unsafe first entry followed by MiBs',
    bytes: memo(() => gz(Buffer.concat([tarOf([{ name: '/etc/passwd', data: Buffer.from('root::0:0::/:/bin/sh\n') }, { name: 'payload.bin', data: randomish(6 * MiB) }, manifest, install]), END]))),
    refusal: /unsafe entry '\/etc\/passwd': absolute path/,
    code: 'KX_BUNDLE_UNSAFE_ENTRY',
    streaming: true,
  },
];
