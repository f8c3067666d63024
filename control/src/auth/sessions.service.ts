import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { SessionRow, SessionsStore } from '../store/sessions.pg.js';
import type { ApiKeysService } from './api-keys.service.js';
import type { Role } from './roles.js';

/** How long a console session lives; signing in again makes a new one. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** The cookie's name; its value is a 256-bit random secret, kept hashed on the server. */
export const SESSION_COOKIE = 'kx_session';

const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** A new session: the cookie's secret is answered once, in the Set-Cookie header. */
export interface CreatedSession {
  token: string;
  role: Role;
  keyId: string;
  keyName: string;
  expiresAt: Date;
}

/**
 * Console sessions (DESIGN §9): an API key is exchanged for a cookie whose
 * secret the browser holds instead of the key. Sessions live in PostgreSQL, so
 * any node checks them and an ended session (or a revoked key) is refused on
 * every node from the next request on.
 */
export class SessionsService {
  private pruner: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: SessionsStore,
    private readonly apiKeys: ApiKeysService,
    private readonly log: Logger,
  ) {}

  /** Undefined for an unknown or revoked key. */
  async create(apiKey: string): Promise<CreatedSession | undefined> {
    const key = await this.apiKeys.verify(apiKey);
    if (!key) return undefined;
    const token = randomBytes(32).toString('base64url');
    const row = await this.store.insert({ tokenHash: hashToken(token), apiKeyId: key.id, expiresAt: new Date(Date.now() + SESSION_TTL_MS) });
    this.log.info({ sessionId: row.id, keyId: key.id, role: key.role }, 'console session started');
    return { token, role: key.role, keyId: key.id, keyName: key.name, expiresAt: row.expiresAt };
  }

  verify(token: string): Promise<SessionRow | undefined> {
    return this.store.findLive(hashToken(token));
  }

  async end(token: string): Promise<void> {
    if (await this.store.end(hashToken(token))) this.log.info('console session ended');
  }

  /** Deletes long-dead rows hourly. */
  startPruning(): void {
    this.pruner = setInterval(() => {
      this.store.prune().catch((err: unknown) => this.log.warn({ err }, 'session prune failed'));
    }, 60 * 60 * 1000);
    this.pruner.unref();
  }

  stopPruning(): void {
    clearInterval(this.pruner);
  }
}
