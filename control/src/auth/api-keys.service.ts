import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import { decodeCursor, isStorableTime, isUuid, toPage, type Page } from '../paging.js';
import type { ApiKeyRow, ApiKeysStore } from '../store/api-keys.pg.js';
import type { Role } from './roles.js';

/** An API key as the API shows it: never its secret, only its first characters. */
export interface ApiKeyView {
  id: string;
  name: string;
  role: Role;
  keyPrefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export function toApiKeyView(r: ApiKeyRow): ApiKeyView {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    keyPrefix: r.keyPrefix,
    createdAt: r.createdAt.toISOString(),
    lastUsedAt: r.lastUsedAt?.toISOString() ?? null,
    revokedAt: r.revokedAt?.toISOString() ?? null,
  };
}

const isCursor = (v: unknown): v is { createdAt: string; id: string } =>
  typeof v === 'object' && v !== null && isStorableTime((v as { createdAt?: unknown }).createdAt) && isUuid((v as { id?: unknown }).id);

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

  /** The key's row when it is known and not revoked; notes the use (at most once a minute). */
  async verify(key: string): Promise<ApiKeyRow | undefined> {
    const row = await this.store.findActiveByHash(hashApiKey(key));
    if (row) await this.store.touch(row.id);
    return row;
  }

  /** Every key, revoked ones too, oldest first. */
  async list(q: { limit: number; cursor?: string }): Promise<Page<ApiKeyView>> {
    const after = q.cursor ? decodeCursor(q.cursor, isCursor) : undefined;
    const rows = await this.store.list(q.limit, after);
    return toPage(rows, q.limit, (r) => ({ createdAt: r.createdAt.toISOString(), id: r.id }), toApiKeyView);
  }

  /** Revokes a key at once (its next request gets 401); the last admin key cannot go. */
  async revoke(id: string): Promise<ApiKeyView> {
    const { row, refused } = await this.store.revoke(id);
    if (refused) throw new Errors.CONFLICT('the last active admin key cannot be revoked; create another admin key first');
    if (!row) throw new Errors.NOT_FOUND(`API key ${id}`);
    this.log.info({ keyId: id }, 'API key revoked');
    return toApiKeyView(row);
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
