import { describe, expect, it } from 'vitest';
import { AgentConfigError } from './errors.js';
import { DEFAULT_KEEPALIVE_S, DEFAULT_TELEMETRY_S, loadAgentConfig, type AgentConfig } from './config.js';

const load = (argv: string[], env: Record<string, string> = {}): AgentConfig => loadAgentConfig(argv, env) as AgentConfig;

describe('loadAgentConfig', () => {
  it('reads the environment, applies the idle-cost defaults and freezes the result', () => {
    const c = load([], { KERNEX_SERVER: 'https://kx.example/', KERNEX_STATE_DIR: '/tmp/kxa', KERNEX_ENROLL_TOKEN: 'tok' });
    expect(c).toMatchObject({ server: 'https://kx.example', stateDir: '/tmp/kxa', enrollToken: 'tok', keyType: 'rsa', logLevel: 'info' });
    expect(c.telemetryS).toBe(DEFAULT_TELEMETRY_S);
    expect(c.keepaliveS).toBe(DEFAULT_KEEPALIVE_S);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('takes one MQTT URL or a list, and names a bad one', () => {
    expect(load([], { KERNEX_SERVER: 'http://a:1', KERNEX_MQTT_URL: 'mqtt://n1:1883, mqtt://n2:1883' }).mqttUrl).toBe('mqtt://n1:1883,mqtt://n2:1883');
    expect(() => loadAgentConfig([], { KERNEX_SERVER: 'http://a:1', KERNEX_MQTT_URL: 'mqtt://n1:1883,http://n2' })).toThrow(/KERNEX_MQTT_URL \(--mqtt-url\) must be mqtt: or mqtts: or ws: or wss: URLs, got 'http:\/\/n2'/);
  });

  it('lets flags win over their variables', () => {
    const c = load(['--server', 'http://a:1', '--telemetry-s', '30', '--key-type', 'p256'], { KERNEX_SERVER: 'http://b:2', KERNEX_TELEMETRY_S: '60' });
    expect(c).toMatchObject({ server: 'http://a:1', telemetryS: 30, keyType: 'p256' });
  });

  it('names every bad value, by variable and flag', () => {
    try {
      loadAgentConfig([], { KERNEX_SERVER: 'ftp://x', KERNEX_TELEMETRY_S: '0', KERNEX_KEY_TYPE: 'dsa', LOG_LEVEL: 'loud' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AgentConfigError);
      const { problems } = err as AgentConfigError;
      expect(problems).toHaveLength(4);
      expect(problems[0]).toMatch(/^KERNEX_SERVER \(--server\) must be a http: or https: URL/);
      expect(problems.join('\n')).toMatch(/KERNEX_KEY_TYPE \(--key-type\) must be rsa or p256, got 'dsa'/);
      expect(problems.join('\n')).toMatch(/KERNEX_TELEMETRY_S \(--telemetry-s\) .* got '0'/);
    }
  });

  it('requires the server URL and refuses unknown flags', () => {
    expect(() => loadAgentConfig([], {})).toThrow(/KERNEX_SERVER \(--server\) is required/);
    expect(() => loadAgentConfig(['--server', 'http://a', '--bogus', 'x'], {})).toThrow(AgentConfigError);
  });
});
