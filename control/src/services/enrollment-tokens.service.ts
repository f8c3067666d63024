import { createHash, randomBytes } from 'node:crypto';
import { Errors } from '../errors.js';
import { decodeCursor, isUuid, toPage, type Page } from '../paging.js';
import type { EnrollmentTokenRow, EnrollmentTokensStore } from '../store/enrollment-tokens.pg.js';

/** Tokens look like `kxe_<43 base64url chars>`: 256 random bits; only their SHA-256 is stored. */
export const hashEnrollmentToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** A token as listed (never its secret). */
export interface EnrollmentTokenView {
  id: string;
  tokenPrefix: string;
  uses: number;
  usesLeft: number;
  tags: string[];
  expiresAt: string;
  createdAt: string;
  revokedAt: string | null;
}

const view = (r: EnrollmentTokenRow): EnrollmentTokenView => ({
  id: r.id,
  tokenPrefix: r.tokenPrefix,
  uses: r.uses,
  usesLeft: r.usesLeft,
  tags: r.tags,
  expiresAt: r.expiresAt.toISOString(),
  createdAt: r.createdAt.toISOString(),
  revokedAt: r.revokedAt?.toISOString() ?? null,
});


/** Enrollment tokens (DESIGN §2): made and revoked by admins, used up by registration. */
export class EnrollmentTokensService {
  constructor(private readonly store: EnrollmentTokensStore) {}

  /** Makes a token; the secret is in this answer only. */
  async create(input: { uses: number; expiresInS: number; tags?: string[] }): Promise<EnrollmentTokenView & { token: string }> {
    const token = `kxe_${randomBytes(32).toString('base64url')}`;
    const row = await this.store.insert({
      tokenHash: hashEnrollmentToken(token),
      tokenPrefix: token.slice(0, 8),
      uses: input.uses,
      expiresInS: input.expiresInS,
      tags: [...new Set(input.tags ?? [])],
    });
    return { token, ...view(row) };
  }

  /** Newest first; the cursor holds the last token id seen. */
  async list(limit: number, cursor: string | undefined): Promise<Page<EnrollmentTokenView>> {
    const after = cursor === undefined ? undefined : decodeCursor(cursor, isUuid);
    return toPage(await this.store.list(limit + 1, after), limit, (r) => r.id, view);
  }

  async revoke(id: string): Promise<EnrollmentTokenView> {
    const row = await this.store.revoke(id);
    if (!row) throw new Errors.NOT_FOUND('enrollment token');
    return view(row);
  }
}
