import { describe, expect, it } from 'vitest';
import { loadCliConfig } from './cli-config.js';
import { deploymentRequest, parsePhases } from './deploy.command.js';
import { cell } from './output.js';
import { parseDuration } from './tokens.command.js';

const base = { rollbackOnAbort: true, interval: 2 };

describe('kernex option parsing', () => {
  it('reads phases as cumulative percentages rising strictly to 100', () => {
    expect(parsePhases('10,50,100')).toEqual([10, 50, 100]);
    expect(parsePhases('100')).toEqual([100]);
    for (const bad of ['50,10,100', '10,50', '0,100', '10,x,100', '']) expect(() => parsePhases(bad), bad).toThrow(/cumulative percentages rising strictly to 100/);
  });

  it('reads durations in s, m, h and d', () => {
    expect([parseDuration('90'), parseDuration('90s'), parseDuration('15m'), parseDuration('24h'), parseDuration('7d')]).toEqual([90, 90, 900, 86400, 604800]);
    expect(() => parseDuration('1w')).toThrow(/duration/);
    expect(() => parseDuration('0')).toThrow(/duration/);
  });

  it('builds the deployment body of DESIGN §5, with a rollout only when asked', () => {
    expect(deploymentRequest('b', { ...base, all: true })).toEqual({ bundleId: 'b', target: { all: true } });
    expect(deploymentRequest('b', { ...base, device: ['d1', 'd2'], phases: [50, 100], phaseWait: 60, rollbackOnAbort: false })).toEqual({
      bundleId: 'b',
      target: { deviceIds: ['d1', 'd2'] },
      rollout: { phases: [{ percent: 50, waitS: 60 }, { percent: 100, waitS: 60 }], rollbackOnAbort: false },
    });
    expect(() => deploymentRequest('b', base)).toThrow(/exactly one of/);
    expect(() => deploymentRequest('b', { ...base, all: true, tag: ['x'] })).toThrow(/exactly one of/);
  });

  it('takes flags over the environment over the config file', () => {
    const env = { KERNEX_URL: 'http://env:8080/', KERNEX_API_KEY: 'kx_env', KERNEX_CONFIG: '/nonexistent/kernex.json' };
    expect(loadCliConfig({}, env)).toEqual({ url: 'http://env:8080', apiKey: 'kx_env', file: '/nonexistent/kernex.json' });
    expect(loadCliConfig({ url: 'https://flag', apiKey: 'kx_flag' }, env)).toMatchObject({ url: 'https://flag', apiKey: 'kx_flag' });
    expect(loadCliConfig({}, { KERNEX_CONFIG: '/nonexistent/kernex.json' })).toMatchObject({ url: 'http://127.0.0.1:8080', apiKey: undefined });
    expect(() => loadCliConfig({ url: 'ftp://x' }, env)).toThrow("the server URL 'ftp://x' is not an http(s) URL");
  });

  it('shows cells for people', () => {
    expect([cell(null), cell([]), cell(['a', 'b']), cell('2026-11-23T10:00:00.123Z'), cell({ app: '1.0' }), cell(3)]).toEqual([
      '-',
      '-',
      'a,b',
      '2026-11-23 10:00:00Z',
      'app=1.0',
      '3',
    ]);
  });
});
