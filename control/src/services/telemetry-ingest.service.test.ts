import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { TelemetrySample } from '../store/telemetry.pg.js';
import { createTelemetryMetrics } from '../metrics.js';
import { TelemetryIngest, type TelemetrySampleRepository } from './telemetry-ingest.service.js';

/** A store that records batches and can be told to fail (the database went away). */
class FakeStore implements TelemetrySampleRepository {
  batches: TelemetrySample[][] = [];
  failing = false;
  async insertBatch(samples: readonly TelemetrySample[]): Promise<number> {
    if (this.failing) throw new Error('connection refused');
    this.batches.push([...samples]);
    return samples.length;
  }
}

function setup(options: { maxBatch?: number; maxBuffered?: number } = {}) {
  const store = new FakeStore();
  const registry = new Registry();
  const metrics = createTelemetryMetrics(registry);
  const ingest = new TelemetryIngest(store, pino({ level: 'silent' }), metrics, { flushMs: 60_000, ...options });
  const value = async (name: string) => (await registry.getSingleMetric(name)!.get()).values;
  return { store, ingest, value };
}

describe('TelemetryIngest', () => {
  it('writes many samples in few batches, in arrival order', async () => {
    const { store, ingest } = setup({ maxBatch: 4 });
    for (let i = 0; i < 10; i++) ingest.add('d', { cpu: i });
    await ingest.flush();
    expect(store.batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(store.batches.flat().map((s) => s.data.cpu)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('keeps a batch the database refused and writes it when the database is back', async () => {
    const { store, ingest, value } = setup();
    store.failing = true;
    ingest.add('d', { cpu: 1 });
    await ingest.flush();
    expect(ingest.backlog).toBe(1);
    store.failing = false;
    ingest.add('d', { cpu: 2 });
    await ingest.flush();
    expect(store.batches.flat().map((s) => s.data.cpu)).toEqual([1, 2]);
    expect((await value('kernex_telemetry_persisted_total'))[0]!.value).toBe(2);
  });

  it('bounds the backlog while the database is away, dropping the oldest and counting them', async () => {
    const { store, ingest, value } = setup({ maxBuffered: 3, maxBatch: 100 });
    store.failing = true;
    for (let i = 0; i < 5; i++) ingest.add('d', { cpu: i });
    expect(ingest.backlog).toBe(3);
    store.failing = false;
    await ingest.flush();
    expect(store.batches.flat().map((s) => s.data.cpu)).toEqual([2, 3, 4]);
    expect(await value('kernex_telemetry_dropped_total')).toEqual([expect.objectContaining({ labels: { reason: 'backlog' }, value: 2 })]);
  });

  it('writes what is left when stopped', async () => {
    const { store, ingest } = setup();
    ingest.start();
    ingest.add('d', { cpu: 1 });
    await ingest.stop();
    expect(store.batches.flat()).toHaveLength(1);
  });
});
