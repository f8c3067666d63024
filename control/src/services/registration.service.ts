import {
  deviceIdFromPublicKey,
  deviceKeyAlg,
  JwtError,
  KeyError,
  MAX_HARDWARE_BYTES,
  publicKeyPem,
  toPublicKey,
  verifyDeviceJwt,
  type RegistrationRequest,
  type RegistrationResponse,
} from '@kernex/shared';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import type { DevicesStore } from '../store/devices.pg.js';
import { hashEnrollmentToken } from './enrollment-tokens.service.js';
import type { PublicEndpoints } from './public-endpoints.js';

/** The answer and whether the device is new (201) or known (200). */
export interface Registration {
  created: boolean;
  response: RegistrationResponse;
}

/** What this needs of the devices store (store/devices.pg.ts implements it). */
export type RegistrationRepository = Pick<DevicesStore, 'insert' | 'get' | 'acceptWithToken'>;

/**
 * `POST /api/v1/devices/register` (DESIGN §2): proof of possession of the key,
 * idempotent by key, accepted at once with a valid enrollment token, pending
 * otherwise. Checks run cheapest first and nothing is written before all pass.
 */
export class RegistrationService {
  constructor(
    private readonly devices: RegistrationRepository,
    /** Built once the listeners are up; registrations are served only after that. */
    private readonly endpoints: () => PublicEndpoints,
    private readonly serverPublicKey: string,
    private readonly log: Logger,
    /** The installation's time, ms since the epoch: proofs are judged by it and devices are told it (a cluster node: the database's clock, DESIGN §8). */
    private readonly now: () => number = Date.now,
  ) {}

  async register(body: RegistrationRequest, hostHeader: string | undefined): Promise<Registration> {
    if (body.hardware !== undefined && Buffer.byteLength(JSON.stringify(body.hardware)) > MAX_HARDWARE_BYTES) {
      throw new Errors.VALIDATION(`body.hardware is larger than ${MAX_HARDWARE_BYTES} bytes serialized`);
    }
    let key;
    try {
      key = toPublicKey(body.publicKey);
      deviceKeyAlg(key);
    } catch (err) {
      if (err instanceof KeyError) throw new Errors.VALIDATION(`body.publicKey: ${err.message}`, { cause: err });
      throw err;
    }
    const deviceId = deviceIdFromPublicKey(key);
    try {
      await verifyDeviceJwt(body.proof, { publicKey: key, deviceId, aud: 'kernex-register', now: this.now() / 1000 });
    } catch (err) {
      if (err instanceof JwtError) {
        this.log.info({ deviceId, reason: err.reason }, 'registration proof refused');
        throw new Errors.BAD_PROOF(err.message, { cause: err });
      }
      throw err;
    }

    const tokenHash = body.enrollmentToken === undefined ? undefined : hashEnrollmentToken(body.enrollmentToken);
    const outcome = await this.devices.insert({
      id: deviceId,
      publicKey: publicKeyPem(key),
      name: body.name,
      hardware: body.hardware,
      tokenHash,
    });
    if (outcome.kind === 'token_invalid') {
      // Registration is idempotent by key (DESIGN §2): a known device is answered as known even
      // when the token it registered with has been spent (by itself, often), expired or revoked.
      // A new or still pending key gains nothing from it: the token is refused.
      const known = await this.devices.get(deviceId);
      if (!known || known.status === 'pending') throw new Errors.ENROLLMENT_TOKEN_INVALID();
    }
    if (outcome.kind === 'inserted') {
      this.log.info({ deviceId, status: outcome.device.status }, 'device registered');
      return { created: true, response: this.answer(deviceId, outcome.device.status, hostHeader) };
    }

    // A known key: answer its status; a pending device may be accepted now by a token.
    let device = await this.devices.get(deviceId);
    if (!device) throw new Error(`device ${deviceId} vanished during registration`);
    if (device.status === 'rejected' || device.status === 'decommissioned') {
      throw new Errors.DEVICE_REFUSED(deviceId, device.status);
    }
    if (device.status === 'pending' && tokenHash !== undefined) {
      const accepted = await this.devices.acceptWithToken(deviceId, tokenHash);
      if (accepted === 'token_invalid') throw new Errors.ENROLLMENT_TOKEN_INVALID();
      device = accepted ?? (await this.devices.get(deviceId)) ?? device;
      this.log.info({ deviceId, status: device.status }, 'pending device accepted by enrollment token');
    }
    return { created: false, response: this.answer(deviceId, device.status, hostHeader) };
  }

  private answer(deviceId: string, status: RegistrationResponse['status'], hostHeader: string | undefined): RegistrationResponse {
    return {
      deviceId,
      status,
      mqtt: this.endpoints().mqttUrls(hostHeader),
      serverPublicKey: this.serverPublicKey,
      serverTime: new Date(this.now()).toISOString(),
    };
  }
}
