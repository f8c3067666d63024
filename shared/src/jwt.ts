import { createPrivateKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, SignJWT } from 'jose';
import { deviceKeyAlg, toPublicKey } from './identity.js';
import { JwtError } from './errors.js';

/** JWT audiences of DESIGN §2. */
export type Audience = 'kernex-mqtt' | 'kernex-http' | 'kernex-register';

/** Longest a device JWT may live: `exp - iat` at most 24 h (DESIGN §2). */
export const MAX_TOKEN_LIFETIME_S = 24 * 3600;
/** A device clock may run ahead this much: accepted while `iat - 300 s <= now`. */
export const CLOCK_SKEW_S = 300;

/** Claims of a device JWT. */
export interface DeviceClaims {
  sub: string;
  aud: Audience;
  iat: number;
  exp: number;
}

/** How a device signs its JWT (DESIGN §2); `now` is the device's corrected clock, not its raw one. */
export interface SignOptions {
  /** PEM (PKCS#8 or PKCS#1/SEC1) or KeyObject of the device's private key. */
  privateKey: string | KeyObject;
  deviceId: string;
  aud: Audience;
  /** Seconds since the epoch; a device corrects this from the server's `serverTime`. */
  now?: number;
  /** Lifetime in seconds (default 1 h, at most 24 h). */
  ttlS?: number;
}

/** Signs a device JWT with RS256 or ES256, whichever the key calls for. */
export async function signDeviceJwt(opts: SignOptions): Promise<string> {
  const key = typeof opts.privateKey === 'string' ? createPrivateKey(opts.privateKey) : opts.privateKey;
  const alg = deviceKeyAlg(toPublicKey(key));
  const iat = Math.floor(opts.now ?? Date.now() / 1000);
  const ttl = Math.min(opts.ttlS ?? 3600, MAX_TOKEN_LIFETIME_S);
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setSubject(opts.deviceId)
    .setAudience(opts.aud)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .sign(key);
}

/** What a device JWT is checked against: the key on file for the claimed `sub`, and the audience of the channel it came in on. */
export interface VerifyOptions {
  publicKey: string | KeyObject;
  deviceId: string;
  aud: Audience;
  /** Seconds since the epoch (default: now). */
  now?: number;
}

/**
 * Verifies a device JWT exactly as DESIGN §2 says: the key's own algorithm
 * only (no `none`, no HMAC confusion), `sub` = deviceId, the expected `aud`,
 * `exp - iat` at most 24 h, accepted while `iat - 300 s <= now < exp`.
 * Throws {@link JwtError}.
 */
export async function verifyDeviceJwt(token: string, opts: VerifyOptions): Promise<DeviceClaims> {
  const key = toPublicKey(opts.publicKey);
  const alg = deviceKeyAlg(key);
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new JwtError('malformed', 'token is not a JWT');
  }
  if (header.alg !== alg) throw new JwtError('wrong_alg', `token uses ${String(header.alg)}, the key needs ${alg}`);
  if (header.crit !== undefined) throw new JwtError('malformed', 'token has critical header parameters'); // RFC 7515 §4.1.11
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError('malformed', 'token is not a compact JWS');
  const [h, p, sig] = parts as [string, string, string];
  // Node's own verify, not jose's WebCrypto path: about three times the rate, which is what a
  // reconnect storm after a restart (empty credential cache) is bounded by (BENCHMARKS.md).
  // RS256 = RSASSA-PKCS1-v1_5/SHA-256; ES256 = ECDSA P-256/SHA-256 with r||s (RFC 7518 §3.3, §3.4).
  const ok = verifySignature(
    'sha256',
    Buffer.from(`${h}.${p}`),
    alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key,
    Buffer.from(sig, 'base64url'),
  );
  if (!ok) throw new JwtError('bad_signature', 'token signature does not verify with the device key');
  const payload = Buffer.from(p, 'base64url');
  let claims: Partial<DeviceClaims>;
  try {
    claims = JSON.parse(new TextDecoder().decode(payload)) as Partial<DeviceClaims>;
  } catch {
    throw new JwtError('malformed', 'token payload is not JSON');
  }
  const { sub, aud, iat, exp } = claims;
  if (typeof iat !== 'number' || typeof exp !== 'number') throw new JwtError('malformed', 'token needs numeric iat and exp');
  if (sub !== opts.deviceId) throw new JwtError('wrong_sub', 'token sub is not this device');
  const auds = Array.isArray(aud) ? aud : [aud];
  if (!auds.includes(opts.aud)) throw new JwtError('wrong_aud', `token aud must be ${opts.aud}`);
  if (exp - iat > MAX_TOKEN_LIFETIME_S) throw new JwtError('too_long', 'token lifetime exceeds 24 h');
  const now = opts.now ?? Date.now() / 1000;
  if (now >= exp) throw new JwtError('expired', 'token has expired');
  if (iat - CLOCK_SKEW_S > now) throw new JwtError('not_yet_valid', 'token iat is in the future');
  return { sub, aud: opts.aud, iat, exp };
}

/** The unverified `sub` of a token, to find the key to verify it with; undefined when unreadable. */
export function peekSubject(token: string): string | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const sub = (JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}
