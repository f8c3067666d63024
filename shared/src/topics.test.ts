import { describe, expect, it } from 'vitest';
import { cmdTopic, eventsTopic, parseTopic, statusTopic, telemetryTopic } from './topics.js';

describe('topics', () => {
  it('builds the four per-device topics of the contract', () => {
    expect(cmdTopic('abc')).toBe('kx/abc/cmd');
    expect(eventsTopic('abc')).toBe('kx/abc/events');
    expect(telemetryTopic('abc')).toBe('kx/abc/telemetry');
    expect(statusTopic('abc')).toBe('kx/abc/status');
  });

  it('parses a device topic back into device and channel', () => {
    expect(parseTopic('kx/abc/telemetry')).toEqual({ deviceId: 'abc', channel: 'telemetry' });
  });

  it.each(['kx/+/cmd', 'kx/#', 'kx/abc/cmd/extra', 'other/abc/cmd', 'kx//cmd', 'kx/abc/unknown', 'kx/a#/cmd'])(
    'refuses %s',
    (topic) => {
      expect(parseTopic(topic)).toBeNull();
    },
  );
});
