import { createPrivateKey, createPublicKey, generateKeyPair, sign, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { SettingsStore } from '../store/settings.pg.js';

const generateKeyPairAsync = promisify(generateKeyPair);
const SETTING = 'server_signing_key';

/** What this needs of the settings store (store/settings.pg.ts implements it). */
export type ServerKeyRepository = Pick<SettingsStore, 'get' | 'putIfAbsent'>;

/**
 * The server's own RSA-4096 key (DESIGN §2), made on first start and kept in
 * the database so every server of one installation signs alike. It signs
 * bundles (RSASSA-PKCS1-v1_5, SHA-256, base64; DESIGN §4); devices learn the
 * public half at registration.
 */
export class ServerKeyService {
  private constructor(
    private readonly privateKey: KeyObject,
    /** SPKI PEM, as sent to devices in `serverPublicKey`. */
    readonly publicKeyPem: string,
  ) {}

  static async load(settings: ServerKeyRepository, log: Logger, initialKeyPem?: string): Promise<ServerKeyService> {
    let stored = await settings.get<{ privateKeyPem: string }>(SETTING);
    if (!stored && initialKeyPem) stored = await settings.putIfAbsent(SETTING, { privateKeyPem: initialKeyPem });
    if (!stored) {
      const started = Date.now();
      const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: 4096 });
      const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      stored = await settings.putIfAbsent(SETTING, { privateKeyPem });
      log.info({ ms: Date.now() - started }, 'made the server signing key (RSA-4096)');
    }
    const privateKey = createPrivateKey(stored.privateKeyPem);
    const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
    return new ServerKeyService(privateKey, publicKeyPem);
  }

  /** Base64 RSASSA-PKCS1-v1_5 / SHA-256 signature of `text`. */
  sign(text: string): string {
    return sign('sha256', Buffer.from(text), this.privateKey).toString('base64');
  }

  /** Checks a signature made by {@link sign}; for tests and self-checks. */
  verify(text: string, signature: string): boolean {
    return verify('sha256', Buffer.from(text), createPublicKey(this.privateKey), Buffer.from(signature, 'base64'));
  }
}
