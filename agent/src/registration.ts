import type { KeyObject } from 'node:crypto';
import { publicKeyPem, signDeviceJwt, type RegistrationRequest, type RegistrationResponse } from '@kernex/shared';
import type { Clock } from './clock.js';
import type { HttpAnswer, HttpClient } from './http-client.js';
import { RegistrationError } from './errors.js';

export interface RegisterOptions {
  server: string;
  privateKey: KeyObject;
  deviceId: string;
  clock: Clock;
  enrollmentToken?: string;
  name?: string;
  hardware?: Record<string, unknown>;
  /** Abort a hanging request after this long (default 30 s). */
  timeoutMs?: number;
  /** The device's HTTP client (it trusts KERNEX_CA_FILE). */
  http: HttpClient;
}

/**
 * `POST /api/v1/devices/register` (DESIGN §2): sends the public key and a
 * proof signed with the private key. Idempotent, so the agent calls it on
 * every start to refresh its status, broker URLs and clock. Every answer
 * (even an error) corrects the clock from the HTTP `Date` header, and a
 * success from `serverTime`, so a device whose clock is far off gets a
 * proof the server accepts on the next try.
 */
export async function register(opts: RegisterOptions): Promise<RegistrationResponse> {
  const proof = await signDeviceJwt({
    privateKey: opts.privateKey,
    deviceId: opts.deviceId,
    aud: 'kernex-register',
    now: opts.clock.nowS(),
    ttlS: 300,
  });
  const body: RegistrationRequest = { publicKey: publicKeyPem(opts.privateKey), proof };
  if (opts.enrollmentToken) body.enrollmentToken = opts.enrollmentToken;
  if (opts.name) body.name = opts.name;
  if (opts.hardware) body.hardware = opts.hardware;

  const sentAt = Date.now();
  let res: HttpAnswer;
  try {
    res = await opts.http.text(`${opts.server}/api/v1/devices/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      timeoutMs: opts.timeoutMs,
    });
  } catch (err) {
    const cause = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new RegistrationError('unreachable', `cannot reach ${opts.server}: ${cause}`, true, { cause: err });
  }
  const receivedAt = Date.now();
  const text = res.text;
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // A proxy's HTML error page: keep the status, say what came back.
  }
  const date = res.headers.date;
  if (res.status === 200 || res.status === 201) {
    const answer = json as unknown as RegistrationResponse;
    if (typeof answer.deviceId !== 'string' || !Array.isArray(answer.mqtt) || typeof answer.serverPublicKey !== 'string') {
      throw new RegistrationError('server', `registration answer is missing fields: ${text.slice(0, 200)}`, true);
    }
    opts.clock.correct(Date.parse(answer.serverTime), sentAt, receivedAt);
    return answer;
  }
  if (date) opts.clock.correct(Date.parse(date), sentAt, receivedAt);
  const message = typeof json.message === 'string' ? json.message : text.slice(0, 200);
  if (json.code === 'KX_ENROLLMENT_TOKEN_INVALID') throw new RegistrationError('bad_token', `server refused the enrollment token: ${message}`, true);
  if (res.status === 403) throw new RegistrationError('refused', `server refused this device: ${message}`, true);
  // A 401 is most often a clock far off: the Date header above has corrected it for the next try.
  if (res.status === 401) throw new RegistrationError('bad_proof', `server refused the proof: ${message}`, true);
  if (res.status >= 400 && res.status < 500 && res.status !== 429 && res.status !== 408) {
    throw new RegistrationError('invalid', `registration refused (${res.status}): ${message}`, true);
  }
  throw new RegistrationError('server', `registration failed (${res.status}): ${message}`, true);
}
