import { createHash, createPublicKey, verify } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { bundleSigningText, type BundleRef } from '@kernex/shared';
import { VerifyError } from '../errors.js';

/**
 * Checks a downloaded blob against its command (DESIGN §4): its size, its
 * sha256, and the server's signature over `kernex-bundle:{name}:{version}:{sha256}`
 * with the key the device learned at registration. Throws {@link VerifyError}.
 */
export async function verifyBundle(file: string, bundle: BundleRef, serverPublicKeyPem: string): Promise<void> {
  const { size } = await fs.stat(file);
  if (size !== bundle.size) throw new VerifyError(`size is ${size} bytes, expected ${bundle.size}`);
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  const sha256 = hash.digest('hex');
  if (sha256 !== bundle.sha256) throw new VerifyError(`sha256 is ${sha256}, expected ${bundle.sha256}`);
  const text = bundleSigningText(bundle.name, bundle.version, bundle.sha256);
  let ok = false;
  try {
    ok = verify('sha256', Buffer.from(text), createPublicKey(serverPublicKeyPem), Buffer.from(bundle.signature, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw new VerifyError('signature does not match the server key');
}
