import { JwtError, verifyDeviceJwt } from '@kernex/shared';
import type { AuthenticateError, Client } from 'aedes';
import type { Logger } from 'pino';
import type { CredentialCache } from './credential-cache.js';
import type { DeviceDirectory } from './device-directory.js';
import type { RefusalLog } from './refusal-log.js';

/** CONNACK return codes of MQTT 3.1.1 (§3.2.2.3) the broker uses. */
const SERVER_UNAVAILABLE = 3;
const NOT_AUTHORIZED = 5;

type Done = (error: AuthenticateError | null, success: boolean | null) => void;

/** Called for every client that passed authentication, before Aedes registers it. */
export type OnAuthenticated = (deviceId: string, client: Client) => void;

/**
 * The Aedes `authenticate` hook (DESIGN §2 Credentials): `clientId` =
 * `username` = deviceId, `password` = a JWT signed by the device's registered
 * key with `aud` kernex-mqtt, valid now, and the device `accepted`. Anything
 * else gets CONNACK 5 "not authorized" and Aedes closes the connection
 * [MQTT-3.2.2-5]; a directory failure gets 3 "server unavailable". Refusals
 * are counted per reason and logged; the hook never throws.
 */
export function createAuthenticate(deps: {
  directory: DeviceDirectory;
  cache: CredentialCache;
  refusals: RefusalLog;
  log: Logger;
  onAuthenticated: OnAuthenticated;
  /** The time tokens are judged against, ms since the epoch (the installation's clock). */
  now: () => number;
}) {
  const { directory, cache, refusals, log, onAuthenticated } = deps;

  const refuse = (done: Done, clientId: string, reason: string, returnCode = NOT_AUTHORIZED): void => {
    refusals.refused(clientId, reason, 'mqtt connect refused', { clientId });
    const err = new Error(reason) as AuthenticateError;
    err.returnCode = returnCode as AuthenticateError['returnCode'];
    done(err, false);
  };

  return function authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: Done): void {
    const deviceId = client.id;
    if (!username || username !== deviceId) return refuse(done, deviceId, 'client_id_mismatch');
    if (!password || password.length === 0) return refuse(done, deviceId, 'no_password');
    const token = password.toString('utf8');
    const now = deps.now() / 1000;
    if (cache.has(deviceId, token, now)) {
      onAuthenticated(deviceId, client);
      return done(null, true);
    }
    const epoch = cache.epoch(deviceId);
    directory.lookup(deviceId).then(
      async (device) => {
        if (!device) return refuse(done, deviceId, 'unknown_device');
        if (device.status !== 'accepted') return refuse(done, deviceId, `device_${device.status}`);
        try {
          const claims = await verifyDeviceJwt(token, { publicKey: device.publicKey, deviceId, aud: 'kernex-mqtt', now });
          // Rejected or decommissioned while we looked it up: the status we read is stale.
          if (cache.epoch(deviceId) !== epoch) return refuse(done, deviceId, 'device_changed');
          cache.set(deviceId, token, claims.exp);
        } catch (err) {
          if (err instanceof JwtError) return refuse(done, deviceId, err.reason);
          log.error({ err, deviceId }, 'mqtt authentication failed');
          return refuse(done, deviceId, 'internal');
        }
        onAuthenticated(deviceId, client);
        done(null, true);
      },
      (err: unknown) => {
        log.warn({ err, deviceId }, 'device directory unavailable');
        refuse(done, deviceId, 'directory_unavailable', SERVER_UNAVAILABLE);
      },
    );
  };
}
