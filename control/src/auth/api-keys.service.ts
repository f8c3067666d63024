import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApiKeyRow, ApiKeysStore } from '../store/api-keys.pg.js';
import type { Role } from './roles.js';

/** A newly made key: the secret is returned here once and never stored. */
export interface CreatedApiKey {
  key: string;
  row: ApiKeyRow;
}

export const hashApiKey = (key: string): string => createHash('sha256').update(key).digest('hex');

/** Keys look like `kx_<43 base64url chars>`: 256 random bits, recognisable in logs and secret scanners. */
export function generateApiKey(): string {
  return `kx_${randomBytes(32).toString('base64url')}`;
}

export class ApiKeysService {
  constructor(
    private readonly store: ApiKeysStore,
    private readonly log: Logger,
  ) {}

  async create(name: string, role: Role, key = generateApiKey()): Promise<CreatedApiKey> {
    const row = await this.store.insert({ name, role, keyHash: hashApiKey(key), keyPrefix: key.slice(0, 7) });
    return { key, row };
  }

  /** The key's row when it is known and not revoked. */
  async verify(key: string): Promise<ApiKeyRow | undefined> {
    return this.store.findActiveByHash(hashApiKey(key));
  }

  /**
   * DESIGN §6: with `KERNEX_ADMIN_KEY` that key is an admin key; otherwise, on
   * a first start with no key at all, an admin key is made and returned so the
   * caller can print it once.
   */
  async bootstrap(adminKey: string | undefined): Promise<string | undefined> {
    if (adminKey) {
      await this.create('bootstrap (KERNEX_ADMIN_KEY)', 'admin', adminKey);
      return undefined;
    }
    if ((await this.store.countActive()) > 0) return undefined;
    const { key, row } = await this.create('bootstrap', 'admin');
    this.log.warn({ keyId: row.id, keyPrefix: row.keyPrefix }, 'created the first admin API key; it is printed once on stderr');
    return key;
  }
}
