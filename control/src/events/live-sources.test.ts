import { EventEmitter } from 'node:events';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { DeploymentView } from '../services/deployments.service.js';
import type { DeviceView } from '../services/devices.service.js';
import { InProcessEventBus, type LiveEvent } from './event-bus.js';
import { LiveSources } from './live-sources.js';

const deploymentView = (id: string, reads: number): DeploymentView =>
  ({ id, status: 'running', phase: 0, counts: { succeeded: reads }, total: 3 }) as unknown as DeploymentView;

function setup() {
  const presence = new EventEmitter();
  const bus = new InProcessEventBus();
  const events: LiveEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const reads: string[] = [];
  const sources = new LiveSources({
    bus,
    presence: presence as never,
    deployment: async (id) => {
      reads.push(id);
      return deploymentView(id, reads.length);
    },
    device: async (id) => ({ id, bundles: { app: '2.0.0' } }) as unknown as DeviceView,
    log: pino({ level: 'silent' }),
    coalesceMs: 10,
  });
  sources.start();
  return { presence, events, reads, sources };
}

const until = async (cond: () => boolean): Promise<void> => {
  while (!cond()) await new Promise((r) => setImmediate(r));
};

describe('live event sources', () => {
  it("publishes the broker's connect and disconnect as device presence", async () => {
    const { presence, events, sources } = setup();
    presence.emit('device:connect', 'd1');
    presence.emit('device:disconnect', 'd1');
    expect(events.map((e) => [e.type, e.data.id, (e.data as { online?: boolean }).online])).toEqual([
      ['device', 'd1', true],
      ['device', 'd1', false],
    ]);
    await sources.stop();
    presence.emit('device:connect', 'd1');
    expect(events).toHaveLength(2);
  });

  it('turns a burst of changes to one deployment into one event read from the store', async () => {
    const { events, reads, sources } = setup();
    for (let i = 0; i < 1000; i++) sources.orchestratorChanged({ kind: 'deployment', deploymentId: 'dep1' });
    await until(() => events.length > 0);
    expect(reads).toEqual(['dep1']);
    expect(events).toEqual([{ type: 'deployment', data: { id: 'dep1', status: 'running', phase: 0, counts: { succeeded: 1 }, total: 3 } }]);
    await sources.stop();
  });

  it('publishes an execution at once, and the installed bundles of a device whose execution succeeded', async () => {
    const { events, sources } = setup();
    sources.orchestratorChanged({ kind: 'execution', executionId: 'e1', deploymentId: 'dep1', deviceId: 'd1', state: 'succeeded', error: null });
    expect(events[0]).toEqual({ type: 'execution', data: { id: 'e1', deploymentId: 'dep1', deviceId: 'd1', state: 'succeeded', error: null } });
    await until(() => events.length > 1);
    expect(events[1]).toEqual({ type: 'device', data: { id: 'd1', bundles: { app: '2.0.0' } } });
    await sources.stop();
  });
});
