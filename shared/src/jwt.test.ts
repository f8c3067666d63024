import { createSign, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deviceIdFromPublicKey } from './identity.js';
import { JwtError } from './errors.js';
import { peekSubject, signDeviceJwt, verifyDeviceJwt } from './jwt.js';

const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ecId = deviceIdFromPublicKey(ec.publicKey);
const now = 1_800_000_000;

/** A JWT made by hand with node:crypto, not by our signer, to check interop. */
function handMadeRs256(claims: object): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(claims)}`;
  const sig = createSign('RSA-SHA256').update(input).sign(rsa.privateKey).toString('base64url');
  return `${input}.${sig}`;
}

const reason = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'accepted';
  } catch (err) {
    return (err as JwtError).reason;
  }
};

describe('device JWTs', () => {
  it('round-trips ES256 and RS256 tokens', async () => {
    const token = await signDeviceJwt({ privateKey: ec.privateKey, deviceId: ecId, aud: 'kernex-mqtt', now });
    expect(await verifyDeviceJwt(token, { publicKey: ec.publicKey, deviceId: ecId, aud: 'kernex-mqtt', now })).toMatchObject({ sub: ecId, iat: now, exp: now + 3600 });
    const rsaId = deviceIdFromPublicKey(rsa.publicKey);
    const handMade = handMadeRs256({ sub: rsaId, aud: 'kernex-http', iat: now, exp: now + 60 });
    expect((await verifyDeviceJwt(handMade, { publicKey: rsa.publicKey, deviceId: rsaId, aud: 'kernex-http', now })).sub).toBe(rsaId);
    expect(peekSubject(handMade)).toBe(rsaId);
  });

  it('refuses each way a token can be wrong, with a stable reason', async () => {
    const opts = { publicKey: ec.publicKey, deviceId: ecId, aud: 'kernex-mqtt' as const, now };
    const sign = (o: object) => signDeviceJwt({ privateKey: ec.privateKey, deviceId: ecId, aud: 'kernex-mqtt', now, ...o });
    expect(await reason(verifyDeviceJwt('garbage', opts))).toBe('malformed');
    expect(await reason(verifyDeviceJwt(await sign({ aud: 'kernex-http' }), opts))).toBe('wrong_aud');
    expect(await reason(verifyDeviceJwt(await sign({ deviceId: 'someone-else' }), opts))).toBe('wrong_sub');
    expect(await reason(verifyDeviceJwt(await sign({ now: now - 7200 }), opts))).toBe('expired');
    expect(await reason(verifyDeviceJwt(await sign({ now: now + 301 }), opts))).toBe('not_yet_valid');
    expect(await reason(verifyDeviceJwt(await sign({ now: now + 299 }), opts))).toBe('accepted');
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const forged = await signDeviceJwt({ privateKey: other.privateKey, deviceId: ecId, aud: 'kernex-mqtt', now });
    expect(await reason(verifyDeviceJwt(forged, opts))).toBe('bad_signature');
    const rsaToken = handMadeRs256({ sub: ecId, aud: 'kernex-mqtt', iat: now, exp: now + 60 });
    expect(await reason(verifyDeviceJwt(rsaToken, opts))).toBe('wrong_alg');
    const tooLong = handMadeRs256({ sub: deviceIdFromPublicKey(rsa.publicKey), aud: 'kernex-mqtt', iat: now, exp: now + 25 * 3600 });
    expect(await reason(verifyDeviceJwt(tooLong, { ...opts, publicKey: rsa.publicKey, deviceId: deviceIdFromPublicKey(rsa.publicKey) }))).toBe('too_long');
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: ecId, aud: 'kernex-mqtt', iat: now, exp: now + 60 })).toString('base64url')}.`;
    expect(await reason(verifyDeviceJwt(none, opts))).toBe('wrong_alg');
  });

  it('checks the signature over exactly the header and payload sent', async () => {
    const opts = { publicKey: ec.publicKey, deviceId: ecId, aud: 'kernex-mqtt' as const, now };
    const token = await signDeviceJwt({ privateKey: ec.privateKey, deviceId: ecId, aud: 'kernex-mqtt', now });
    const [h, , sig] = token.split('.') as [string, string, string];
    const longer = Buffer.from(JSON.stringify({ sub: ecId, aud: 'kernex-mqtt', iat: now, exp: now + 7200 })).toString('base64url');
    expect(await reason(verifyDeviceJwt(`${h}.${longer}.${sig}`, opts))).toBe('bad_signature');
    // ES256 signatures are r||s (RFC 7518 §3.4); the DER form node:crypto makes by default is refused.
    const input = token.split('.').slice(0, 2).join('.');
    const der = createSign('SHA256').update(input).sign(ec.privateKey).toString('base64url');
    expect(await reason(verifyDeviceJwt(`${input}.${der}`, opts))).toBe('bad_signature');
    expect(await reason(verifyDeviceJwt(`${token}.extra`, opts))).toBe('malformed');
    const crit = Buffer.from(JSON.stringify({ alg: 'ES256', crit: ['exp'] })).toString('base64url');
    expect(await reason(verifyDeviceJwt(`${crit}.${token.split('.')[1]}.${sig}`, opts))).toBe('malformed');
  });
});
