import { createHash, generateKeyPairSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { KeyError } from './errors.js';
import { deviceIdFromPublicKey, deviceKeyAlg, toPublicKey } from './identity.js';

describe('deviceIdFromPublicKey', () => {
  it('is the first 24 hex chars of SHA-256 over the SPKI DER, computed independently with openssl', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'DER'], { input: pem });
    const expected = createHash('sha256').update(der).digest('hex').slice(0, 24);
    expect(deviceIdFromPublicKey(pem)).toBe(expected);
    expect(deviceIdFromPublicKey(publicKey)).toMatch(/^[0-9a-f]{24}$/);
  });

  it('refuses text that is not a key', () => {
    expect(() => toPublicKey('-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----')).toThrow(KeyError);
  });
});

describe('deviceKeyAlg', () => {
  it('takes RSA 2048 as RS256 and P-256 as ES256', () => {
    expect(deviceKeyAlg(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey)).toBe('RS256');
    expect(deviceKeyAlg(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey)).toBe('ES256');
  });

  it('refuses small RSA keys, other curves and other key types', () => {
    expect(() => deviceKeyAlg(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey)).toThrow(/2048 to 4096/);
    expect(() => deviceKeyAlg(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey)).toThrow(/P-256/);
    expect(() => deviceKeyAlg(generateKeyPairSync('ed25519').publicKey)).toThrow(/unsupported/);
  });

  it('refuses RSA keys whose public exponent is not 65537', () => {
    expect(() => deviceKeyAlg(generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey)).toThrow(KeyError);
    expect(() => deviceKeyAlg(generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey)).toThrow(/65537, got 3/);
  });
});
