import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createBrokerMetrics } from './metrics.js';
import { RefusalLog } from './refusal-log.js';

/** A pino logger at debug that keeps each line's level and fields. */
function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

describe('RefusalLog', () => {
  it('counts every refusal, logs each at debug and warns once a minute per source and reason with the count since', async () => {
    const registry = new Registry();
    const metrics = createBrokerMetrics(registry);
    const { log, lines } = capture();
    let now = 0;
    const refusals = new RefusalLog(metrics, log, () => now);
    const warns = () => lines.filter((l) => l.level === 40);

    for (let i = 0; i < 100; i++) refusals.refused('d1', 'invalid_json', 'mqtt publish dropped', { clientId: 'd1' });
    refusals.refused('d2', 'invalid_json', 'mqtt publish dropped');
    refusals.refused('d1', 'acl_publish', 'mqtt publish dropped');
    expect(lines.filter((l) => l.level === 20)).toHaveLength(102);
    expect(warns().map((w) => [w.clientId, w.reason, w.refused])).toEqual([
      ['d1', 'invalid_json', 1],
      [undefined, 'invalid_json', 1],
      [undefined, 'acl_publish', 1],
    ]);

    now = 60_000;
    refusals.refused('d1', 'invalid_json', 'mqtt publish dropped', { clientId: 'd1' });
    expect(warns().at(-1)).toMatchObject({ clientId: 'd1', reason: 'invalid_json', refused: 100 });
    expect(warns()).toHaveLength(4);

    const counted = (await registry.getSingleMetric('kernex_mqtt_refused_total')!.get()).values;
    expect(counted.find((v) => v.labels.reason === 'invalid_json')?.value).toBe(102);
  });
});
