import { createHash, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { KeyError } from './errors.js';
import { DEVICE_ID_PATTERN } from './schemas/expectations.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** JWT algorithms a device key may use (DESIGN §2). */
export type DeviceAlg = 'RS256' | 'ES256';

/** Key types a device can make: RSA-4096 by default, P-256 for constrained devices and simulators. */
export type DeviceKeyType = 'rsa' | 'p256';

/** Accepts a PEM string or a KeyObject; throws {@link KeyError} when it is not a public key. */
export function toPublicKey(key: string | KeyObject): KeyObject {
  if (typeof key !== 'string') return key.type === 'private' ? createPublicKey(key) : key;
  try {
    return createPublicKey({ key, format: 'pem' });
  } catch {
    throw new KeyError('publicKey is not a PEM-encoded public key');
  }
}

/** The only RSA public exponent accepted (F4). */
export const RSA_EXPONENT = 65537n;

/**
 * The JWT algorithm for a device key, or a {@link KeyError}: RSA of
 * 2048-4096 bits (RS256, exponent 65537) and ECDSA P-256 (ES256) only (DESIGN §2).
 */
export function deviceKeyAlg(key: KeyObject): DeviceAlg {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048 || bits > 4096) throw new KeyError(`RSA keys must have 2048 to 4096 bits, got ${bits}`);
    // A small exponent (3) invites signature forgeries on sloppy verifiers; every sane generator uses F4.
    if (details.publicExponent !== RSA_EXPONENT) throw new KeyError(`RSA keys must use the public exponent 65537, got ${details.publicExponent}`);
    return 'RS256';
  }
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve !== 'prime256v1') throw new KeyError(`EC keys must use P-256, got ${details.namedCurve}`);
    return 'ES256';
  }
  throw new KeyError(`unsupported key type ${key.asymmetricKeyType}; use RSA or P-256`);
}

const DEVICE_ID = new RegExp(DEVICE_ID_PATTERN);

/** Whether `id` has the form of a device id (DESIGN §2: 24 lowercase hex characters). */
export function isDeviceId(id: string): boolean {
  return DEVICE_ID.test(id);
}

/**
 * `deviceId` = the first 24 lowercase hex characters of SHA-256 over the
 * public key's SPKI DER (DESIGN §2): the same key always yields the same id.
 */
export function deviceIdFromPublicKey(key: string | KeyObject): string {
  const der = toPublicKey(key).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 24);
}

/** SPKI PEM of a public key, the form registration sends. */
export function publicKeyPem(key: string | KeyObject): string {
  return toPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
}

/** A fresh device key pair as PEM (PKCS#8 private, SPKI public). */
export async function generateDeviceKey(type: DeviceKeyType = 'rsa'): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const { privateKey, publicKey } =
    type === 'rsa'
      ? await generateKeyPairAsync('rsa', { modulusLength: 4096 })
      : await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
