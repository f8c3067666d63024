import { deviceIdFromPublicKey, generateDeviceKey, signDeviceJwt, type Audience, type DeviceKeyType } from '@kernex/shared';

/** A device identity for tests: its keys, its id, and JWTs signed by it. */
export interface TestDevice {
  id: string;
  privateKeyPem: string;
  publicKeyPem: string;
  jwt(aud: Audience, opts?: { now?: number; ttlS?: number; deviceId?: string }): Promise<string>;
}

/** A device with a fresh key (P-256 by default: RSA-4096 takes seconds to make). */
export async function makeDevice(type: DeviceKeyType = 'p256'): Promise<TestDevice> {
  return deviceFromKeys(await generateDeviceKey(type));
}

export function deviceFromKeys(keys: { privateKeyPem: string; publicKeyPem: string }): TestDevice {
  const id = deviceIdFromPublicKey(keys.publicKeyPem);
  return {
    id,
    ...keys,
    jwt: (aud, opts = {}) => signDeviceJwt({ privateKey: keys.privateKeyPem, deviceId: opts.deviceId ?? id, aud, now: opts.now, ttlS: opts.ttlS }),
  };
}

/** POSTs a registration and returns status and body. */
export async function register(
  httpUrl: string,
  device: TestDevice,
  extra: Record<string, unknown> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${httpUrl}/api/v1/devices/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ publicKey: device.publicKeyPem, proof: await device.jwt('kernex-register'), ...extra }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A JSON request with the given headers; answers status and parsed body. */
export async function api(
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
