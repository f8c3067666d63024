import { describe, expect, it } from 'vitest';
import { validateCommand, validateEvent, validateStatus, validateTelemetry } from './index.js';

describe('payload schemas', () => {
  it('accepts the compact telemetry of the agent and extra metrics of other clients', () => {
    expect(validateTelemetry({ ts: 1, cpu: 12.5, mem: [1, 2], disk: [3, 4], load: [0.1, 0.2, 0.3], up: 9, v: '0.1.0', b: { app: '1.0.0' } })).toBe(true);
    expect(validateTelemetry({ temperature: 41.5, fw: 'v2' })).toBe(true);
  });

  it('refuses telemetry of the wrong shape and says where', () => {
    expect(validateTelemetry({ cpu: 'high' })).toBe(false);
    expect(validateTelemetry.lastError()).toMatch(/^\/cpu /);
    expect(validateTelemetry([1, 2])).toBe(false);
    expect(validateTelemetry({ nested: { deep: 1 } })).toBe(false);
  });

  it('checks events against the execution states', () => {
    expect(validateEvent({ executionId: 'e1', state: 'downloading', progress: 40, ts: Date.now() })).toBe(true);
    expect(validateEvent({ executionId: 'e1', state: 'exploded', ts: 1 })).toBe(false);
    expect(validateEvent({ executionId: 'e1', state: 'failed', ts: 1, extra: 1 })).toBe(false);
  });

  it('checks status and commands', () => {
    expect(validateStatus({ state: 'online', v: '1' })).toBe(true);
    expect(validateStatus({ state: 'sleepy' })).toBe(false);
    expect(validateCommand({ id: 'c', type: 'cancel', executionId: 'e', issuedAt: 'now' })).toBe(true);
    expect(validateCommand({ id: 'c', type: 'deploy', executionId: 'e', issuedAt: 'now' })).toBe(false);
    expect(validateCommand({ id: 'c', type: 'rollback', executionId: 'e', issuedAt: 'now', name: 'app' })).toBe(true);
  });
});
