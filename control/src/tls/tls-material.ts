import fs from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config.js';
import { StartupError } from '../errors.js';
import { ensureAutoTls } from './auto-ca.js';

/** Certificate and key the TLS listeners use; `caFile` is set in the zero-setup mode. */
export interface TlsMaterial {
  cert: string;
  key: string;
  /** The self-made CA devices should pin (KERNEX_CA_FILE on the agent). */
  caFile?: string;
}

/** Hosts the self-made server certificate names: loopback and the KERNEX_PUBLIC_URL host. */
export function certificateHosts(publicUrl: string | undefined): string[] {
  const hosts = ['localhost', '127.0.0.1', '::1'];
  if (publicUrl) {
    const host = new URL(publicUrl).hostname.replace(/^\[|\]$/g, '');
    if (host && !hosts.includes(host)) hosts.push(host);
  }
  return hosts;
}

/** Loads (files) or makes (auto) the TLS material, or undefined when TLS is off. */
export async function loadTlsMaterial(config: Readonly<ServerConfig>, log: Logger): Promise<TlsMaterial | undefined> {
  const { tls } = config;
  if (tls.mode === 'off') return undefined;
  if (tls.mode === 'files') {
    const read = async (file: string, variable: string): Promise<string> => {
      try {
        return await fs.readFile(file, 'utf8');
      } catch (err) {
        throw new StartupError(`${variable} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
      }
    };
    return { cert: await read(tls.certFile, 'KERNEX_TLS_CERT'), key: await read(tls.keyFile, 'KERNEX_TLS_KEY') };
  }
  const hosts = certificateHosts(config.publicUrl);
  const made = await ensureAutoTls(config.dataDir, hosts);
  log.info({ caFile: made.files.caCert, hosts, createdCa: made.created.ca, createdCert: made.created.server }, 'tls: using the server-made CA');
  return { cert: made.cert, key: made.key, caFile: made.files.caCert };
}
