import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { BundleStorage } from '../storage/bundle-storage.js';
import type { BundlesStore, PrunedBundle } from '../store/bundles.pg.js';
import type { HistoryStore } from '../store/history.pg.js';

/** A bundle id, as blob keys of bundles are: other keys in the store are not the sweep's. */
const BUNDLE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A blob younger than this is never an orphan: its upload may be between storing it and writing its row. */
const ORPHAN_GRACE_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Missing blobs named in one log line, at most. */
const MISSING_LOGGED = 20;

/** The metrics of retention and of the bundle storage. */
export interface RetentionMetrics {
  bundlesPruned: Counter;
  orphansRemoved: Counter;
  blobsMissing: Gauge;
  historyPruned: Counter<'kind'>;
  failures: Counter<'task'>;
  /** Storage operations that failed (the API answered 503), by operation. */
  storageErrors: Counter<'op'>;
}

export function createRetentionMetrics(registry: Registry): RetentionMetrics {
  const registers = [registry];
  return {
    bundlesPruned: new Counter({ name: 'kernex_bundles_pruned_total', help: 'Bundle versions deleted by retention (KERNEX_BUNDLE_KEEP), row and blob', registers }),
    orphansRemoved: new Counter({ name: 'kernex_orphan_blobs_removed_total', help: 'Stored blobs that no bundle row named, removed by the sweep', registers }),
    blobsMissing: new Gauge({ name: 'kernex_bundle_blobs_missing', help: 'Bundle rows whose blob was missing from storage at the last sweep', registers }),
    historyPruned: new Counter({
      name: 'kernex_history_pruned_total',
      help: 'History rows deleted by retention: ended deployments (with their executions) and audit entries',
      labelNames: ['kind'],
      registers,
    }),
    failures: new Counter({ name: 'kernex_retention_failures_total', help: 'Background retention runs that failed, by task (retried at the next run)', labelNames: ['task'], registers }),
    storageErrors: new Counter({ name: 'kernex_bundle_storage_errors_total', help: 'Bundle storage operations that failed, by operation', labelNames: ['op'], registers }),
  };
}

export interface RetentionOptions {
  bundles: BundlesStore;
  history: HistoryStore;
  storage: BundleStorage;
  log: Logger;
  metrics: RetentionMetrics;
  /** KERNEX_BUNDLE_KEEP. */
  keep: number;
  executionRetentionDays: number;
  auditRetentionDays: number;
}

/**
 * Everything that deletes old things, in the background (DESIGN §4):
 * bundle versions beyond KERNEX_BUNDLE_KEEP per name (never one in use), blobs
 * no row names (left by a crash between storing a blob and writing its row),
 * ended deployments with their executions, and audit entries. Runs after each
 * upload and hourly; one task runs at a time, and a failed one is logged,
 * counted and tried again next time.
 */
export class RetentionService {
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private first: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: RetentionOptions) {}

  /** Runs `task` after the ones already queued. */
  private queue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Deletes bundle versions beyond `keep` per name, rows first: a row never
   * names a blob that is gone. A blob whose delete fails stays as an orphan
   * for the sweep.
   */
  pruneBundles(): Promise<PrunedBundle[]> {
    return this.queue(async () => {
      const pruned = await this.opts.bundles.pruneBeyond(this.opts.keep);
      for (const b of pruned) {
        await this.opts.storage.delete(b.id).catch((err: Error) => {
          this.opts.metrics.storageErrors.inc({ op: 'delete' });
          this.opts.log.warn({ bundleId: b.id, err: err.message }, 'pruned bundle blob not removed; the sweep will');
        });
        this.opts.log.info({ bundleId: b.id, name: b.name, version: b.version }, 'bundle pruned');
      }
      this.opts.metrics.bundlesPruned.inc(pruned.length);
      return pruned;
    });
  }

  /**
   * Compares stored blobs with bundle rows: removes blobs no row names that are
   * older than `graceMs`, and reports rows whose blob is missing (gauge and log).
   */
  sweepBlobs(graceMs = ORPHAN_GRACE_MS): Promise<{ removed: string[]; missing: string[] }> {
    return this.queue(async () => {
      const { bundles, storage, metrics, log } = this.opts;
      // Rows read before the listing: each had its blob stored before it was written.
      const rowsBefore = await bundles.allIds();
      const stored = new Map<string, Date>();
      for await (const b of storage.list()) stored.set(b.key, b.modifiedAt);
      // Rows read after it: a blob listed whose row appears meanwhile is no orphan.
      const rowsAfter = await bundles.allIds();

      const cutoff = Date.now() - graceMs;
      const candidates = [...stored].filter(([key, at]) => BUNDLE_ID.test(key) && !rowsAfter.has(key) && at.getTime() <= cutoff).map(([key]) => key);
      const named = new Set(await bundles.existing(candidates));
      const removed: string[] = [];
      for (const key of candidates) {
        if (named.has(key)) continue;
        await storage.delete(key);
        removed.push(key);
        log.info({ blob: key }, 'orphan blob removed');
      }
      metrics.orphansRemoved.inc(removed.length);

      // A row pruned or deleted meanwhile took its blob with it: not missing.
      const missing = await bundles.existing([...rowsBefore].filter((id) => !stored.has(id)));
      metrics.blobsMissing.set(missing.length);
      if (missing.length > 0) log.error({ count: missing.length, bundleIds: missing.slice(0, MISSING_LOGGED) }, 'bundle rows whose blob is missing');
      return { removed, missing };
    });
  }

  /** Deletes ended deployments (and their executions) and audit entries older than their retention. */
  pruneHistory(now = new Date()): Promise<{ deployments: number; audit: number }> {
    return this.queue(async () => {
      const { history, metrics, log } = this.opts;
      const drain = async (prune: (before: Date, batch: number) => Promise<number>, days: number, batch: number): Promise<number> => {
        const before = new Date(now.getTime() - days * DAY_MS);
        let total = 0;
        for (;;) {
          const n = await prune(before, batch);
          total += n;
          if (n < batch) return total;
        }
      };
      const deployments = await drain((b, n) => history.pruneEndedDeployments(b, n), this.opts.executionRetentionDays, 500);
      const audit = await drain((b, n) => history.pruneAudit(b, n), this.opts.auditRetentionDays, 5000);
      metrics.historyPruned.inc({ kind: 'deployment' }, deployments);
      metrics.historyPruned.inc({ kind: 'audit' }, audit);
      if (deployments + audit > 0) log.info({ deployments, audit }, 'old history pruned');
      return { deployments, audit };
    });
  }

  /** Prunes bundles in the background (after an upload): never throws. */
  requestPrune(): void {
    if (this.stopped) return;
    void this.pruneBundles().catch((err: Error) => this.failed('bundles', err));
  }

  private failed(task: string, err: Error): void {
    this.opts.metrics.failures.inc({ task });
    this.opts.log.warn({ task, err: err.message }, 'retention failed; will retry');
  }

  /** Every task once, each failure counted on its own. */
  async runAll(): Promise<void> {
    const tasks: Array<[string, () => Promise<unknown>]> = [
      ['bundles', () => this.pruneBundles()],
      ['sweep', () => this.sweepBlobs()],
      ['history', () => this.pruneHistory()],
    ];
    for (const [task, run] of tasks) {
      if (this.stopped) return;
      await run().catch((err: Error) => this.failed(task, err));
    }
  }

  /** Runs every task shortly after start and then every `everyMs` (default hourly). */
  start(everyMs = 3_600_000): void {
    this.first = setTimeout(() => void this.runAll(), 5000);
    this.first.unref();
    this.timer = setInterval(() => void this.runAll(), everyMs);
    this.timer.unref();
  }

  /** Stops the timers and waits for the task that is running. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.first);
    clearInterval(this.timer);
    await this.chain;
  }
}
