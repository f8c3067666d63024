import { describe, expect, it } from 'vitest';
import { parseSimArgs, summaryLine } from './args.js';

describe('kernex sim arguments', () => {
  it('reads flags, falls back to the KERNEX_* variables and leaves the rest to the defaults', () => {
    const o = parseSimArgs(['--devices', '50', '--flap-mean-s', '2.5', '--fail-rate', '0.1', '--json'], { KERNEX_URL: 'http://h:1', KERNEX_ENROLL_TOKEN: 'kxe_t' });
    expect(o).toMatchObject({ devices: 50, server: 'http://h:1', enrollToken: 'kxe_t', flapMeanS: 2.5, failRate: 0.1, json: true, summaryS: 5 });
    expect(o !== 'help' && o.connectRate).toBeUndefined();
  });

  it('reads the operator settings KERNEX_URL and KERNEX_API_KEY, as every kernex command does (DESIGN §7)', () => {
    const o = parseSimArgs(['--devices', '3'], { KERNEX_URL: 'http://h:2', KERNEX_API_KEY: 'kx_admin' });
    expect(o).toMatchObject({ server: 'http://h:2', adminKey: 'kx_admin', enrollToken: undefined, tags: undefined });
    expect(parseSimArgs(['--devices', '3', '--url', 'http://h:3', '--api-key', 'kx_flag', '--tag', 'lab', '--tag', 'b'], { KERNEX_URL: 'http://h:2', KERNEX_API_KEY: 'kx_env' })).toMatchObject({
      server: 'http://h:3',
      adminKey: 'kx_flag',
      tags: ['lab', 'b'],
    });
  });

  it('takes the CA to trust from --ca-file, else KERNEX_CA_FILE, as the agent does', () => {
    expect(parseSimArgs(['--devices', '1', '--ca-file', '/f/ca.pem'], { KERNEX_API_KEY: 'k', KERNEX_CA_FILE: '/env/ca.pem' })).toMatchObject({ caFile: '/f/ca.pem' });
    expect(parseSimArgs(['--devices', '1'], { KERNEX_API_KEY: 'k', KERNEX_CA_FILE: '/env/ca.pem' })).toMatchObject({ caFile: '/env/ca.pem' });
    expect(parseSimArgs(['--devices', '1'], { KERNEX_API_KEY: 'k' })).toMatchObject({ caFile: undefined });
  });

  it('refuses to run with neither an API key nor an enrollment token, and --tag with a token', () => {
    expect(() => parseSimArgs(['--devices', '3'], {})).toThrow(/no API key and no enrollment token/);
    expect(() => parseSimArgs(['--devices', '3', '--enroll-token', 'kxe_t', '--tag', 'lab'], {})).toThrow(/--tag/);
  });

  it('refuses a missing or malformed --devices and out-of-range shares, naming the flag', () => {
    expect(() => parseSimArgs([], { KERNEX_API_KEY: 'k' })).toThrow('--devices N is required');
    expect(() => parseSimArgs(['--devices', '1.5'], {})).toThrow(/--devices must be an integer/);
    expect(() => parseSimArgs(['--devices', '3', '--download-sample', '2'], {})).toThrow(/--download-sample must be a number between 0 and 1/);
    expect(() => parseSimArgs(['--devices', '3', '--key-type', 'dsa'], {})).toThrow(/--key-type must be p256 or rsa/);
    expect(() => parseSimArgs(['--devices', '3', '--bogus'], {})).toThrow(/bogus/);
  });

  it('answers help', () => {
    expect(parseSimArgs(['--help'], {})).toBe('help');
  });

  it('summarises executions by state on one line', () => {
    const line = summaryLine({ devices: 10, started: 10, connected: 9, everConnected: 10, commands: 4, telemetry: 20, flaps: 1, downloadedBytes: 0, executions: { succeeded: 3, installing: 1 }, elapsedS: 12.3, keys: { cached: 10, made: 0 }, workers: 2 });
    expect(line).toBe('[12s] connected 9/10 (started 10) commands 4 telemetry 20 flaps 1 executions: succeeded=3 installing=1');
  });
});
