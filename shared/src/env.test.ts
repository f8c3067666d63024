import { describe, expect, it } from 'vitest';
import { EnvReader } from './env.js';

const reader = (env: Record<string, string | undefined>) => new EnvReader((k) => env[k]);

describe('EnvReader', () => {
  it('gives the fallback for unset and empty values without a problem', () => {
    const r = reader({ EMPTY: '' });
    expect([r.int('UNSET', 7, { min: 1 }), r.port('EMPTY', 80), r.bool('UNSET', true), r.string('EMPTY'), r.list('UNSET')]).toEqual([7, 80, true, undefined, []]);
    expect(r.problems).toEqual([]);
  });

  it('reads whole numbers, ports, booleans, choices, URLs and lists', () => {
    const r = reader({ N: '42', P: '0', B: 'off', C: 'json', U: 'https://a.example', L: ' a, ,b ' });
    expect(r.int('N', 1, { min: 1, max: 100 })).toBe(42);
    expect(r.port('P', 8080)).toBe(0);
    expect(r.bool('B', true)).toBe(false);
    expect(r.oneOf('C', ['auto', 'json'], 'auto')).toBe('json');
    expect(r.url('U', ['https:'])).toBe('https://a.example');
    expect(r.list('L')).toEqual(['a', 'b']);
    expect(r.problems).toEqual([]);
  });

  it('records one line per bad value, naming it, and keeps going', () => {
    const r = new EnvReader<string>((k) => ({ N: '0', S: '5x', P: '70000', B: 'maybe', C: 'xml', D: 'mysql://u:secret@h/db', U: 'not a url' })[k], (k) => `${k} (--${k.toLowerCase()})`);
    r.int('N', 1, { min: 1, max: 9 });
    r.int('S', 1, { min: 1, unit: 'seconds' });
    r.port('P', 1);
    r.bool('B', false);
    r.oneOf('C', ['auto', 'json'], 'auto');
    r.url('D', ['postgres:']);
    r.url('U', ['https:']);
    expect(r.problems).toEqual([
      "N (--n) must be a whole number from 1 to 9, got '0'",
      "S (--s) must be a whole number of seconds of at least 1, got '5x'",
      "P (--p) must be a port number between 0 and 65535, got '70000'",
      "B (--b) must be true or false, got 'maybe'",
      "C (--c) must be auto or json, got 'xml'",
      "D (--d) must be a postgres: URL, got 'mysql:'",
      'U (--u) is not a valid URL',
    ]);
    expect(r.problems.join('\n')).not.toContain('secret');
  });
});
