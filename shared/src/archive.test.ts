import { describe, expect, it } from 'vitest';
import { ArchiveGuard, bundleSigningText, normaliseEntryPath, type ArchiveEntryHeader } from './archive.js';
import { UnsafeEntryError } from './errors.js';
import { validateManifest } from './schemas/index.js';

const file = (name: string, size = 1): ArchiveEntryHeader => ({ name, type: 'file', size });
const dir = (name: string): ArchiveEntryHeader => ({ name, type: 'directory', size: 0 });
const sym = (name: string, linkname: string): ArchiveEntryHeader => ({ name, type: 'symlink', linkname });
const hard = (name: string, linkname: string): ArchiveEntryHeader => ({ name, type: 'link', linkname });

const limits = { maxEntryBytes: 100, maxTotalBytes: 150, maxEntries: 5 };

/** Runs the guard over `entries`; returns the refusal, or undefined when all pass. */
function firstRefusal(entries: ArchiveEntryHeader[]): UnsafeEntryError | undefined {
  const guard = new ArchiveGuard(limits);
  try {
    for (const e of entries) guard.check(e);
    return undefined;
  } catch (err) {
    if (err instanceof UnsafeEntryError) return err;
    throw err;
  }
}

describe('ArchiveGuard', () => {
  const hostile: Array<[string, ArchiveEntryHeader[], string, RegExp]> = [
    ['an absolute path', [file('/etc/passwd')], '/etc/passwd', /absolute/],
    ['a .. component', [file('a/../../x')], 'a/../../x', /'\.\.'/],
    ['a leading ..', [file('../x')], '../x', /'\.\.'/],
    ['a backslash', [file('a\\..\\x')], 'a\\..\\x', /backslash/],
    ['a NUL', [file('a\0b')], 'a\0b', /NUL/],
    ['an empty name', [file('')], '', /empty/],
    ['a symlink to an absolute path', [sym('lib', '/etc')], 'lib', /absolute/],
    ['a symlink that climbs out', [dir('a'), sym('a/up', '../../x')], 'a/up', /leaves/],
    ['a write through a symlink', [sym('s', 'd'), file('s/x')], 's/x', /through symlink 's'/],
    ['a chained symlink escape', [sym('s', '.'), sym('t', 's/..')], 't', /through symlink 's'/],
    ['a symlink placed on an earlier walk', [sym('t', 's/../x'), sym('s', '.')], 's', /earlier symlink target/],
    ['a hardlink out of the bundle', [hard('h', '../../etc/shadow')], 'h', /'\.\.'/],
    ['a hardlink to an absolute path', [hard('h', '/etc/shadow')], 'h', /absolute/],
    ['a hardlink to nothing of the bundle', [hard('h', 'missing')], 'h', /not an earlier file/],
    ['a character device', [{ name: 'null', type: 'character-device' }], 'null', /device/],
    ['a block device', [{ name: 'sda', type: 'block-device' }], 'sda', /device/],
    ['a fifo', [{ name: 'pipe', type: 'fifo' }], 'pipe', /fifo/],
    ['an unknown type', [{ name: 'x', type: 'gnu-sparse' }], 'x', /entry type/],
    ['a typeflag tar-stream does not know (null type)', [{ name: 'x', type: null, size: 1 }], 'x', /unknown entry type/],
    ['an oversize entry', [file('big', 101)], 'big', /larger than 100/],
    ['an oversize total', [file('a', 100), file('b', 51)], 'b', /larger than 150 bytes unpacked/],
    ['too many entries', [file('1'), file('2'), file('3'), file('4'), file('5'), file('6')], '6', /more than 5/],
    ['a duplicate file', [file('a'), file('./a')], './a', /duplicate/],
    ['a file replaced by a symlink', [file('a'), sym('a', 'b')], 'a', /duplicate/],
    ['a path through a file', [file('a'), file('a/b')], 'a/b', /through file/],
  ];

  it.each(hostile)('refuses %s and names the entry', (_what, entries, entry, reason) => {
    const err = firstRefusal(entries);
    expect(err).toBeInstanceOf(UnsafeEntryError);
    expect(err!.entry).toBe(entry);
    expect(err!.reason).toMatch(reason);
    expect(err!.message).toContain(`'${entry}'`);
  });

  it('accepts an ordinary bundle with inner links', () => {
    const guard = new ArchiveGuard({ ...limits, maxEntries: 10 });
    const out = [
      dir('./'),
      file('./manifest.json', 10),
      dir('bin/'),
      file('lib/tool', 40),
      sym('bin/tool', '../lib/tool'),
      sym('current', 'lib'),
      hard('lib/tool2', 'lib/tool'),
    ].map((e) => guard.check(e));
    expect(out.map((e) => [e.path, e.kind])).toEqual([
      ['.', 'directory'],
      ['manifest.json', 'file'],
      ['bin', 'directory'],
      ['lib/tool', 'file'],
      ['bin/tool', 'symlink'],
      ['current', 'symlink'],
      ['lib/tool2', 'hardlink'],
    ]);
    expect(guard.totalBytes).toBe(50);
    expect(guard.hasFile('lib/tool2')).toBe(true);
  });
});

describe('normaliseEntryPath', () => {
  it('strips ./ and trailing slashes', () => {
    expect(normaliseEntryPath('./a//b/')).toEqual({ path: 'a/b' });
    expect(normaliseEntryPath('./')).toEqual({ path: '.' });
  });
});

describe('validateManifest', () => {
  const ok = { name: 'web-app', version: '1.2.3-rc.1+build.5', install: 'install.sh' };

  it('accepts a minimal and a full manifest', () => {
    expect(validateManifest(ok)).toBe(true);
    expect(validateManifest({ ...ok, healthCheck: { script: 'bin/check.sh', timeoutS: 30 }, description: 'x' })).toBe(true);
  });

  it.each([
    ['no version', { name: 'a', install: 'i.sh' }, /version/],
    ['a version that is not semver', { ...ok, version: '1.2' }, /\/version/],
    ['a leading-zero version', { ...ok, version: '01.2.3' }, /\/version/],
    ['a name with a slash', { ...ok, name: 'a/b' }, /\/name/],
    ['an absolute install path', { ...ok, install: '/bin/sh' }, /\/install/],
    ['an install path that climbs', { ...ok, install: 'x/../../sh' }, /\/install/],
    ['a health check without script', { ...ok, healthCheck: { timeoutS: 3 } }, /healthCheck/],
    ['a zero health check timeout', { ...ok, healthCheck: { script: 'c', timeoutS: 0 } }, /timeoutS/],
  ])('refuses %s', (_what, manifest, where) => {
    expect(validateManifest(manifest)).toBe(false);
    expect(validateManifest.lastError()).toMatch(where);
  });
});

describe('bundleSigningText', () => {
  it('is the contract text', () => {
    expect(bundleSigningText('app', '1.0.0', 'ab')).toBe('kernex-bundle:app:1.0.0:ab');
  });
});
