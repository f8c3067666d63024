import fs from 'node:fs/promises';
import net from 'node:net';
import type { ConnectionOptions } from 'node:tls';

/** What postgres.js takes for `ssl`: off, a mode without verification, or Node TLS options. */
export type PgSsl = false | 'prefer' | 'require' | ConnectionOptions;

const LIBPQ_TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey'];
const MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

/**
 * Reads libpq's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) from a
 * `DATABASE_URL` the way libpq does, and returns the URL without them plus the
 * postgres.js `ssl` option. postgres.js on its own ignores `sslrootcert=<file>` (and
 * sends it to the server as a setting, which refuses the connection), and treats
 * `sslmode=disable` as a wish for TLS. Managed services hand out URLs like
 * `...?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem` (DESIGN §10).
 */
export async function connectOptions(raw: string): Promise<{ url: string; ssl: PgSsl | undefined }> {
  const url = new URL(raw);
  const q = url.searchParams;
  const mode = q.get('sslmode') ?? undefined;
  const rootcert = q.get('sslrootcert') ?? undefined;
  const cert = q.get('sslcert') ?? undefined;
  const key = q.get('sslkey') ?? undefined;
  for (const p of LIBPQ_TLS_PARAMS) q.delete(p);
  if (mode !== undefined && !MODES.includes(mode)) throw new Error(`sslmode must be one of ${MODES.join(', ')}, got '${mode}'`);
  if (mode === undefined && rootcert === undefined) return { url: url.toString(), ssl: undefined };
  if (mode === 'disable') return { url: url.toString(), ssl: false };

  const read = async (file: string, what: string): Promise<Buffer> => {
    try {
      return await fs.readFile(file);
    } catch (err) {
      throw new Error(`cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
  };
  const clientCert = cert && key ? { cert: await read(cert, 'sslcert'), key: await read(key, 'sslkey') } : {};
  // libpq: with a root certificate given, `require` verifies the chain as `verify-ca` does.
  const effective = mode === 'require' && rootcert ? 'verify-ca' : (mode ?? 'verify-full');
  if (effective === 'allow' || effective === 'prefer') return { url: url.toString(), ssl: Object.keys(clientCert).length ? { ...clientCert, rejectUnauthorized: false } : 'prefer' };
  if (effective === 'require') return { url: url.toString(), ssl: Object.keys(clientCert).length ? { ...clientCert, rejectUnauthorized: false } : 'require' };

  const ca = rootcert && rootcert !== 'system' ? { ca: await read(rootcert, 'sslrootcert') } : {};
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const tls: ConnectionOptions = { ...ca, ...clientCert, rejectUnauthorized: true };
  if (effective === 'verify-ca') {
    tls.checkServerIdentity = () => undefined; // chain only, as libpq's verify-ca
  } else {
    tls.host = host; // what the certificate is checked against
    if (!net.isIP(host)) tls.servername = host;
  }
  return { url: url.toString(), ssl: tls };
}
