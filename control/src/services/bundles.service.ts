import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { bundleSigningText, DEFAULT_ARCHIVE_LIMITS, type ArchiveLimits, type BundleRef } from '@kernex/shared';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import { StorageUnavailableError, type BundleStorage, type ByteRange } from '../storage/bundle-storage.js';
import type { BundleRow, BundlesStore } from '../store/bundles.pg.js';
import { decodeCursor, isCursorKey, type Page } from '../paging.js';
import { inspectBundleStream } from './bundle-archive.js';
import type { ServerKeyService } from './server-key.service.js';

/** What the API answers for a bundle (DESIGN §4). */
export interface BundleView extends Omit<BundleRef, 'url'> {
  description?: string;
  createdAt: string;
}

export const toBundleView = (b: BundleRow): BundleView => ({
  id: b.id,
  name: b.name,
  version: b.version,
  sha256: b.sha256,
  size: b.size,
  signature: b.signature,
  ...(b.manifest.description !== undefined ? { description: b.manifest.description } : {}),
  createdAt: b.createdAt.toISOString(),
});

/** Decides whether a device may fetch a bundle: only one sent to it in a live execution (DESIGN §4). */
export type DeviceBundleAccess = (deviceId: string, bundleId: string) => Promise<boolean>;

/** Upload, list, fetch and delete bundles; the rules of DESIGN §4. */
export class BundlesService {
  constructor(
    private readonly store: BundlesStore,
    private readonly storage: BundleStorage,
    private readonly serverKey: ServerKeyService,
    private readonly log: Logger,
    private readonly opts: {
      maxBytes: number;
      limits?: ArchiveLimits;
      /** Counts a storage operation that failed (kernex_bundle_storage_errors_total). */
      onStorageError?: (op: string) => void;
    },
    /** Set by server.ts to the deployments store's `deviceMayFetch`; until then devices get no bundle. */
    public deviceAccess: DeviceBundleAccess = async () => false,
    /** Called after each stored bundle (retention prunes in the background). */
    public afterStore: () => void = () => undefined,
  ) {}

  /** A storage failure is a 503 the client may retry (devices do); anything else passes through. */
  private unavailable(err: unknown): never {
    if (err instanceof StorageUnavailableError) {
      this.opts.onStorageError?.(err.op);
      this.log.warn({ op: err.op, err: err.message }, 'bundle storage unavailable');
      throw new Errors.UNAVAILABLE('bundle storage is unavailable; retry later');
    }
    throw err;
  }

  /** Removes a blob whose row was not written (or was deleted); a failure leaves an orphan for the sweep. */
  private async dropBlob(id: string): Promise<void> {
    await this.storage.delete(id).catch((err: Error) => {
      if (err instanceof StorageUnavailableError) this.opts.onStorageError?.(err.op);
      this.log.warn({ bundleId: id, err: err.message }, 'blob not removed; the orphan sweep will');
    });
  }

  /** Streams an upload to storage, checking it on the way; answers the stored bundle. */
  async upload(body: Readable): Promise<BundleRow> {
    const tempFile = this.storage.tempPath();
    try {
      const inspected = await inspectBundleStream(body, {
        tempFile,
        maxBytes: this.opts.maxBytes,
        limits: this.opts.limits ?? DEFAULT_ARCHIVE_LIMITS,
      });
      const { name, version } = inspected.manifest;
      if (await this.store.exists(name, version)) throw new Errors.CONFLICT(`bundle ${name} ${version} exists already`);
      const id = randomUUID();
      // Blob first, row second: a row always names a whole blob. A crash in
      // between leaves a blob no row names, which the orphan sweep removes.
      await this.storage.put(id, tempFile).catch((err: unknown) => this.unavailable(err));
      const signature = this.serverKey.sign(bundleSigningText(name, version, inspected.sha256));
      const row = await this.store
        .insert({ id, name, version, sha256: inspected.sha256, size: inspected.size, signature, manifest: inspected.manifest })
        .catch(async (err: unknown) => {
          await this.dropBlob(id);
          throw err;
        });
      if (!row) {
        await this.dropBlob(id);
        throw new Errors.CONFLICT(`bundle ${name} ${version} exists already`);
      }
      this.log.info({ bundleId: id, name, version, size: inspected.size }, 'bundle stored');
      this.afterStore();
      return row;
    } finally {
      await fs.rm(tempFile, { force: true });
    }
  }

  async get(id: string): Promise<BundleRow> {
    const row = await this.store.get(id);
    if (!row) throw new Errors.NOT_FOUND('bundle');
    return row;
  }

  async list(limit: number, cursor?: string, name?: string): Promise<Page<BundleRow>> {
    const after = cursor ? decodeCursor(cursor, isCursorKey) : undefined;
    return this.store.list(limit, after, name);
  }

  async delete(id: string): Promise<void> {
    const result = await this.store.delete(id);
    if (result === 'absent') throw new Errors.NOT_FOUND('bundle');
    if (result === 'in-use') throw new Errors.CONFLICT('this bundle is in use: a running deployment or a live execution uses it, or a device has it installed');
    await this.dropBlob(id);
    this.log.info({ bundleId: id }, 'bundle deleted');
  }

  /**
   * Checks a device may fetch the bundle; API keys (viewer and up) may fetch any.
   * A bundle a device may not fetch answers the same 404 as one that does not
   * exist, so a device cannot learn which bundles exist (DESIGN §6).
   */
  async assertCanFetch(principal: { kind: 'device'; deviceId: string } | { kind: 'apiKey' }, bundleId: string): Promise<void> {
    if (principal.kind === 'device' && !(await this.deviceAccess(principal.deviceId, bundleId))) {
      throw new Errors.NOT_FOUND('bundle');
    }
  }

  /** Opens the blob, whole or a range of it. */
  openBlob(id: string, range?: ByteRange): Promise<Readable> {
    return this.storage.open(id, range).catch((err: unknown) => this.unavailable(err));
  }
}
