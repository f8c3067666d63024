import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';

/** PEM files of the zero-setup TLS mode, in `KERNEX_DATA_DIR/tls/`. */
export interface AutoTlsFiles {
  dir: string;
  /** The CA devices pin (agents: KERNEX_CA_FILE). */
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export const autoTlsFiles = (dataDir: string): AutoTlsFiles => {
  const dir = path.join(dataDir, 'tls');
  return {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    caKey: path.join(dir, 'ca.key'),
    cert: path.join(dir, 'server.crt'),
    key: path.join(dir, 'server.key'),
  };
};

const DAY_MS = 24 * 3600 * 1000;
const CA_DAYS = 3650;
/** Short enough for clients that cap server certificates (Apple: 398 days); renewed at start when 30 days are left. */
const SERVER_DAYS = 397;
const RENEW_DAYS = 30;

/** An RSA-2048 key made by Node's native crypto (node-forge's JS key generation takes seconds), as forge objects. */
function rsaKey(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem);
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem };
}

function baseCert(publicKey: forge.pki.rsa.PublicKey, days: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`; // positive, 128 bits of randomness
  cert.validity.notBefore = new Date(Date.now() - 3600_000); // tolerate device clocks a little behind
  cert.validity.notAfter = new Date(Date.now() + days * DAY_MS);
  return cert;
}

/** A self-signed CA certificate and key. */
export function makeCa(commonName: string): { certPem: string; keyPem: string } {
  const key = rsaKey();
  const cert = baseCert(key.publicKey, CA_DAYS);
  const subject = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'Kernex' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: key.pem };
}

const isIp = (h: string): boolean => /^[\d.]+$/.test(h) || h.includes(':');

/** A server certificate for `hosts` (DNS names and IP addresses), signed by the CA. */
export function makeServerCert(ca: { certPem: string; keyPem: string }, hosts: readonly string[]): { certPem: string; keyPem: string } {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const key = rsaKey();
  const cert = baseCert(key.publicKey, SERVER_DAYS);
  cert.setSubject([{ name: 'commonName', value: hosts[0] ?? 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: hosts.map((h) => (isIp(h) ? { type: 7, ip: h } : { type: 2, value: h })) },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: key.pem };
}

/** The SAN hosts of a certificate and when it expires. */
function describeCert(certPem: string): { hosts: string[]; notAfter: Date } {
  const cert = forge.pki.certificateFromPem(certPem);
  const san = cert.getExtension('subjectAltName') as { altNames?: Array<{ type: number; value?: string; ip?: string }> } | null;
  const hosts = (san?.altNames ?? []).map((n) => n.ip ?? n.value ?? '');
  return { hosts, notAfter: cert.validity.notAfter };
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The zero-setup TLS mode: keeps a CA (made once; its key 0600) and a server
 * certificate for `hosts` in `dataDir/tls/`, remaking the server certificate
 * when the hosts change or it nears expiry. Devices pin `ca.crt`.
 */
export async function ensureAutoTls(
  dataDir: string,
  hosts: readonly string[],
): Promise<{ files: AutoTlsFiles; cert: string; key: string; ca: string; created: { ca: boolean; server: boolean } }> {
  const files = autoTlsFiles(dataDir);
  await fs.mkdir(files.dir, { recursive: true, mode: 0o700 });
  let caCert = await readIfExists(files.caCert);
  let caKey = await readIfExists(files.caKey);
  const created = { ca: false, server: false };
  if (!caCert || !caKey) {
    const ca = makeCa(`Kernex CA ${os.hostname()}`);
    await fs.writeFile(files.caKey, ca.keyPem, { mode: 0o600 });
    await fs.writeFile(files.caCert, ca.certPem, { mode: 0o644 });
    ({ certPem: caCert, keyPem: caKey } = ca);
    created.ca = true;
  }
  let cert = created.ca ? undefined : await readIfExists(files.cert);
  let key = cert ? await readIfExists(files.key) : undefined;
  const current = cert ? describeCert(cert) : undefined;
  const stale =
    !cert ||
    !key ||
    !current ||
    current.notAfter.getTime() - Date.now() < RENEW_DAYS * DAY_MS ||
    [...current.hosts].sort().join(',') !== [...hosts].sort().join(',');
  if (stale) {
    const made = makeServerCert({ certPem: caCert, keyPem: caKey }, hosts);
    await fs.writeFile(files.key, made.keyPem, { mode: 0o600 });
    await fs.writeFile(files.cert, made.certPem, { mode: 0o644 });
    ({ certPem: cert, keyPem: key } = made);
    created.server = true;
  }
  return { files, cert: cert!, key: key!, ca: caCert, created };
}
