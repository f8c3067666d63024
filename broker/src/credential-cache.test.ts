import { describe, expect, it } from 'vitest';
import { CredentialCache } from './credential-cache.js';

describe('CredentialCache', () => {
  it('answers the same token until it expires, and only that token', () => {
    const cache = new CredentialCache();
    cache.set('d1', 'jwt-a', 1000);
    expect(cache.has('d1', 'jwt-a', 999)).toBe(true);
    expect(cache.has('d1', 'jwt-b', 999)).toBe(false);
    expect(cache.has('d2', 'jwt-a', 999)).toBe(false);
    expect(cache.has('d1', 'jwt-a', 1000)).toBe(false);
    expect(cache.size).toBe(0);
  });

  it('forgets a device and moves its epoch, so an in-flight verification is discarded', () => {
    const cache = new CredentialCache();
    cache.set('d1', 'jwt', 1000);
    const before = cache.epoch('d1');
    cache.forget('d1');
    expect(cache.has('d1', 'jwt', 1)).toBe(false);
    expect(cache.epoch('d1')).not.toBe(before);
  });

  it('stays within its bound, dropping the oldest entry', () => {
    const cache = new CredentialCache(2);
    cache.set('a', 't', 10);
    cache.set('b', 't', 10);
    cache.set('c', 't', 10);
    expect(cache.size).toBe(2);
    expect(cache.has('a', 't', 1)).toBe(false);
    expect(cache.has('c', 't', 1)).toBe(true);
  });
});
