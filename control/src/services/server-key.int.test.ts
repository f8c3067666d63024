import { createPublicKey, verify } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SettingsStore } from '../store/settings.pg.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';
import { ServerKeyService } from './server-key.service.js';

describe('server signing key', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('is RSA-4096 and signs so that anyone with the public key can check', () => {
    const key = server.services.serverKey;
    const pub = createPublicKey(key.publicKeyPem);
    expect(pub.asymmetricKeyDetails?.modulusLength).toBe(4096);
    const text = 'kernex-bundle:app:1.0.0:' + 'a'.repeat(64);
    const signature = key.sign(text);
    expect(verify('sha256', Buffer.from(text), pub, Buffer.from(signature, 'base64'))).toBe(true);
    expect(key.verify(text + 'x', signature)).toBe(false);
  });

  it('is the same key after a restart (loaded from the database)', async () => {
    const again = await ServerKeyService.load(new SettingsStore(server.sql), pino({ level: 'silent' }));
    expect(again.publicKeyPem).toBe(server.services.serverKey.publicKeyPem);
  });
});

describe('server signing key made by the server itself (no key given, as in production)', () => {
  let server: TestServer;
  let injected: TestServer;
  beforeAll(async () => {
    [server, injected] = await Promise.all([startTestServer({}, { ownSigningKey: true }), startTestServer()]);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([server?.stop(), injected?.stop()]);
  });

  it('makes an RSA-4096 key (exponent 65537) on first start, keeps it in the database and signs with it', async () => {
    const key = server.services.serverKey;
    const pub = createPublicKey(key.publicKeyPem);
    expect(pub.asymmetricKeyType).toBe('rsa');
    expect(pub.asymmetricKeyDetails?.modulusLength).toBe(4096);
    expect(pub.asymmetricKeyDetails?.publicExponent).toBe(65537n);
    // Its own key, not the one the other test servers share.
    expect(key.publicKeyPem).not.toBe(injected.services.serverKey.publicKeyPem);
    const text = 'kernex-bundle:app:1.0.0:' + 'b'.repeat(64);
    expect(verify('sha256', Buffer.from(text), pub, Buffer.from(key.sign(text), 'base64'))).toBe(true);
    const again = await ServerKeyService.load(new SettingsStore(server.sql), pino({ level: 'silent' }));
    expect(again.publicKeyPem).toBe(key.publicKeyPem);
  });
});
