import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { ArchiveGuard, DEFAULT_ARCHIVE_LIMITS, INFLATE_CHUNK_BYTES, inflatedBound, indexSigningText, parseIndex, serialiseIndex, type DeltaRef, type FileIndexEntry } from '@kernex/shared';
import type { Logger } from 'pino';
import tar from 'tar-stream';
import type { BundleStorage } from '../storage/bundle-storage.js';
import type { BundleRow } from '../store/bundles.pg.js';
import type { DeltaRow, DeltasStore } from '../store/deltas.pg.js';
import type { ServerKeyService } from './server-key.service.js';

/**
 * A delta is sent only when it is clearly smaller than the bundle: at most this
 * share of its bytes (DESIGN §4). Past it, the extra requests and the rebuild
 * on the device are not worth what they save.
 */
export const DELTA_MAX_SHARE = 0.5;

/** Storage key of the delta A→B (not a bundle id: the orphan sweep leaves it to its row). */
export const deltaBlobKey = (fromId: string, toId: string): string => `delta-${fromId}-${toId}`;

/** URLs a delta is told by (PublicEndpoints). */
export interface DeltaUrls {
  bundleDeltaUrl(toId: string, fromId: string): string;
  bundleIndexUrl(bundleId: string): string;
}

/**
 * Delta transfer on the server (DESIGN §4): records and signs each bundle's
 * file index at upload, makes the delta A→B once per pair (a .tar.gz of B's
 * files whose content A lacks, in bundle storage) and says which devices get one.
 * A's blob is not needed: its index tells which contents it has.
 */
export class DeltaService {
  private readonly making = new Map<string, Promise<DeltaRow | undefined>>();

  constructor(
    private readonly store: DeltasStore,
    private readonly storage: BundleStorage,
    private readonly serverKey: ServerKeyService,
    private readonly log: Logger,
  ) {}

  /** Records the bundle's index as canonical JSON and signs it as `kernex-index:{name}:{version}:{sha256}`. */
  async recordIndex(bundle: { id: string; name: string; version: string }, entries: FileIndexEntry[]): Promise<void> {
    const { text, sha256 } = serialiseIndex({ name: bundle.name, version: bundle.version, entries });
    const signature = this.serverKey.sign(indexSigningText(bundle.name, bundle.version, sha256));
    await this.store.insertIndex(this.store.sql, { bundleId: bundle.id, text, sha256, signature });
  }

  index(bundleId: string): ReturnType<DeltasStore['index']> {
    return this.store.index(this.store.sql, bundleId);
  }

  delta(fromId: string, toId: string): Promise<DeltaRow | undefined> {
    return this.store.delta(this.store.sql, fromId, toId);
  }

  /** Makes the deltas to `to` from every version the target devices are known to have (at deployment). */
  async prepareFor(to: BundleRow, deviceIds: readonly string[]): Promise<void> {
    for (const from of await this.store.sourcesAmong(this.store.sql, deviceIds, to.name)) {
      if (from.bundleId !== to.id) await this.ensure(from.bundleId, to);
    }
  }

  /**
   * The `delta` each device of `deviceIds` gets for bundle `to`: only when its
   * installed version is known, the delta from it is made and it is clearly
   * smaller than the bundle. A known version without a delta yet has one made
   * in the background (the device gets it when the command is sent again).
   */
  async refsFor(db: Parameters<DeltasStore['index']>[0], to: { id: string; name: string; size: number }, deviceIds: readonly string[], urls: DeltaUrls): Promise<Map<string, DeltaRef>> {
    const out = new Map<string, DeltaRef>();
    const versions = await this.store.installedVersions(db, deviceIds, to.name);
    if (versions.size === 0) return out;
    const index = await this.store.index(db, to.id);
    if (!index) return out;
    const made = await this.store.deltasTo(db, to.id);
    for (const [deviceId, version] of versions) {
      const d = made.get(version);
      if (!d) {
        void this.ensureByVersion(to, version);
        continue;
      }
      if (d.size > to.size * DELTA_MAX_SHARE) continue;
      out.set(deviceId, { from: version, url: urls.bundleDeltaUrl(to.id, d.fromBundleId), sha256: d.sha256, size: d.size, index: urls.bundleIndexUrl(to.id), indexSignature: index.signature });
    }
    return out;
  }

  private async ensureByVersion(to: { id: string; name: string }, version: string): Promise<void> {
    try {
      const fromId = await this.store.indexedBundle(this.store.sql, to.name, version);
      if (fromId && fromId !== to.id) await this.ensure(fromId, to);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, to: to.id, from: version }, 'delta not made');
    }
  }

  /** The delta from → to, made now if it was not (once per pair, however many ask at once). */
  ensure(fromId: string, to: { id: string }): Promise<DeltaRow | undefined> {
    const key = `${fromId}:${to.id}`;
    let p = this.making.get(key);
    if (!p) {
      p = this.make(fromId, to.id).finally(() => this.making.delete(key));
      this.making.set(key, p);
    }
    return p;
  }

  private async make(fromId: string, toId: string): Promise<DeltaRow | undefined> {
    const sql = this.store.sql;
    const have = await this.store.delta(sql, fromId, toId);
    if (have) return have;
    const [fromIndex, toIndex] = await Promise.all([this.store.index(sql, fromId), this.store.index(sql, toId)]);
    if (!fromIndex || !toIndex) return undefined;
    const a = parseIndex(fromIndex.text);
    const b = parseIndex(toIndex.text);
    if ('reason' in a || 'reason' in b) throw new Error('a stored file index does not parse');
    const aHas = new Set(a.index.entries.filter((e) => e.type === 'file').map((e) => e.sha256!));
    const bByPath = new Map(b.index.entries.map((e) => [e.path, e]));
    // Each content A lacks is carried once; other paths with it are filled on the device.
    const wanted = new Set(b.index.entries.filter((e) => e.type === 'file' && !aHas.has(e.sha256!)).map((e) => e.sha256!));

    const started = process.hrtime.bigint();
    const temp = this.storage.tempPath();
    const hash = createHash('sha256');
    let size = 0;
    let files = 0;
    try {
      const pack = tar.pack();
      const written = pipeline(
        pack,
        createGzip(),
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            hash.update(chunk);
            size += chunk.length;
            cb(null, chunk);
          },
        }),
        createWriteStream(temp, { flags: 'wx', mode: 0o600 }),
      );
      const extract = tar.extract();
      const guard = new ArchiveGuard(DEFAULT_ARCHIVE_LIMITS);
      const walk = async (): Promise<void> => {
        for await (const entry of extract) {
          const e = guard.check(entry.header);
          const indexed = bByPath.get(e.path);
          if (e.kind === 'file' && indexed?.sha256 && wanted.has(indexed.sha256)) {
            wanted.delete(indexed.sha256);
            const body = entry.pipe(pack.entry({ name: e.path, type: 'file', mode: indexed.mode, size: indexed.size }));
            await new Promise<void>((resolve, reject) => body.once('finish', resolve).once('error', reject));
            files += 1;
          } else {
            entry.resume();
            await new Promise<void>((resolve, reject) => entry.once('end', resolve).once('close', resolve).once('error', reject));
          }
        }
      };
      const blob = await this.storage.open(toId);
      const read = pipeline(blob, createGunzip({ chunkSize: INFLATE_CHUNK_BYTES }), inflatedBound(DEFAULT_ARCHIVE_LIMITS), extract);
      const walked = walk().catch((err: unknown) => {
        extract.destroy(err as Error);
        throw err;
      });
      const [r, w] = await Promise.allSettled([read, walked]);
      const failure = r.status === 'rejected' ? r.reason : w.status === 'rejected' ? w.reason : undefined;
      if (failure !== undefined) {
        pack.destroy(failure as Error);
        await written.catch(() => undefined);
        throw failure;
      }
      pack.finalize();
      await written;
      const key = deltaBlobKey(fromId, toId);
      await this.storage.put(key, temp);
      const row = { fromBundleId: fromId, toBundleId: toId, blobKey: key, sha256: hash.digest('hex'), size, files };
      if (!(await this.store.insertDelta(sql, row))) return this.store.delta(sql, fromId, toId);
      this.log.info({ from: fromId, to: toId, size, files, ms: Number((process.hrtime.bigint() - started) / 1_000_000n) }, 'delta made');
      return (await this.store.delta(sql, fromId, toId))!;
    } finally {
      await fs.rm(temp, { force: true });
    }
  }
}
