import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectOptions } from './pg-url.js';

describe('connectOptions (libpq TLS parameters in DATABASE_URL)', () => {
  it('leaves a URL without TLS parameters to postgres.js', async () => {
    expect(await connectOptions('postgres://u:p@db:5432/kx?application_name=k')).toEqual({ url: 'postgres://u:p@db:5432/kx?application_name=k', ssl: undefined });
  });

  it('takes sslmode=disable as no TLS at all, and strips the libpq parameters so the server never sees them', async () => {
    const res = await connectOptions('postgres://u:p@db/kx?sslmode=disable&sslrootcert=/nope');
    expect(res.ssl).toBe(false);
    expect(new URL(res.url).search).toBe('');
  });

  it('encrypts without verification for require, prefer and allow', async () => {
    expect((await connectOptions('postgres://db/kx?sslmode=require')).ssl).toBe('require');
    expect((await connectOptions('postgres://db/kx?sslmode=prefer')).ssl).toBe('prefer');
    expect((await connectOptions('postgres://db/kx?sslmode=allow')).ssl).toBe('prefer');
  });

  it('verifies chain and host name with verify-full and the sslrootcert file', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-pgurl-'));
    const ca = path.join(dir, 'ca.pem');
    await fs.writeFile(ca, 'PEM');
    try {
      const full = await connectOptions(`postgres://db.example.com/kx?sslmode=verify-full&sslrootcert=${ca}`);
      expect(full.ssl).toMatchObject({ rejectUnauthorized: true, servername: 'db.example.com', host: 'db.example.com', ca: Buffer.from('PEM') });
      // libpq: require plus a root certificate verifies the chain (verify-ca), not the host name.
      const chain = await connectOptions(`postgres://db.example.com/kx?sslmode=require&sslrootcert=${ca}`);
      expect(chain.ssl).toMatchObject({ rejectUnauthorized: true, ca: Buffer.from('PEM') });
      expect((chain.ssl as { checkServerIdentity: () => unknown }).checkServerIdentity()).toBeUndefined();
      // sslrootcert alone means verify-full, libpq's default with a root certificate.
      expect((await connectOptions(`postgres://10.0.0.5/kx?sslrootcert=${ca}`)).ssl).toMatchObject({ rejectUnauthorized: true, host: '10.0.0.5' });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('uses the system CAs for sslrootcert=system', async () => {
    const res = await connectOptions('postgres://db.example.com/kx?sslrootcert=system');
    expect(res.ssl).toEqual({ rejectUnauthorized: true, host: 'db.example.com', servername: 'db.example.com' });
  });

  it('names a bad sslmode and an unreadable root certificate', async () => {
    await expect(connectOptions('postgres://db/kx?sslmode=maybe')).rejects.toThrow(/sslmode must be one of .*got 'maybe'/);
    await expect(connectOptions('postgres://db/kx?sslmode=verify-full&sslrootcert=/no/such/ca.pem')).rejects.toThrow('cannot read sslrootcert /no/such/ca.pem (ENOENT)');
  });
});
