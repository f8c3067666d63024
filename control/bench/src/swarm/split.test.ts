import { describe, expect, it } from 'vitest';
import { sliceSwarm, urlListFor } from './split.js';

describe('sliceSwarm', () => {
  it('covers every client once in slices that differ by at most one', () => {
    const slices = sliceSwarm(10, 4);
    expect(slices).toEqual([
      { offset: 0, count: 3 },
      { offset: 3, count: 3 },
      { offset: 6, count: 2 },
      { offset: 8, count: 2 },
    ]);
  });

  it('makes no empty slice when there are fewer clients than parts', () => {
    expect(sliceSwarm(2, 4)).toEqual([
      { offset: 0, count: 1 },
      { offset: 1, count: 1 },
    ]);
    expect(sliceSwarm(0, 3)).toEqual([]);
  });

  it('refuses zero parts', () => {
    expect(() => sliceSwarm(5, 0)).toThrow(RangeError);
  });
});

describe('urlListFor', () => {
  const urls = ['mqtt://a', 'mqtt://b', 'mqtt://c'];
  it('starts devices on the nodes in turn and lists the others after, in order', () => {
    expect(urlListFor(0, urls)).toEqual(['mqtt://a', 'mqtt://b', 'mqtt://c']);
    expect(urlListFor(1, urls)).toEqual(['mqtt://b', 'mqtt://c', 'mqtt://a']);
    expect(urlListFor(5, urls)).toEqual(['mqtt://c', 'mqtt://a', 'mqtt://b']);
    expect(urlListFor(7, ['mqtt://only'])).toEqual(['mqtt://only']);
  });
});
