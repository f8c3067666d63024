import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { runCli } from '../test-support/run-cli.js';
import { startS3, type TestS3 } from '../test-support/s3-server.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/** The archive's entries: name → bytes. */
async function readArchive(file: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c) => chunks.push(c as Buffer));
    stream.on('end', () => {
      out.set(header.name, Buffer.concat(chunks));
      next();
    });
  });
  await pipeline(createReadStream(file), createGunzip(), extract);
  return out;
}

/** DESIGN §10 with S3 bundle storage: the bucket is the user's to back up; the backup records its keys. */
describe('kernex backup with KERNEX_BUNDLE_STORE=s3 (s3rver on loopback)', () => {
  let s3: TestS3;
  let database: TestDatabase;
  let dir: string;
  let server: ServerProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    s3 = await startS3();
    database = await createTestDatabase();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-backup-s3-'));
    env = { ...s3.env, AWS_EC2_METADATA_DISABLED: 'true', DATABASE_URL: database.url, KERNEX_DATA_DIR: path.join(dir, 'data') };
    server = spawnServer({ ...env, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', KERNEX_ADMIN_KEY: 'kx_backup_s3_test_key' });
  });
  afterAll(async () => {
    if (server && server.proc.exitCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await database?.drop();
    await s3?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('records each bundle row with its key and size in the bucket, and copies no blob', async () => {
    const { httpPort } = await server.ready;
    const body = await makeBundle({ version: '1.0.0' });
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/v1/bundles`, {
      method: 'POST',
      body,
      headers: { authorization: 'Bearer kx_backup_s3_test_key', 'content-type': 'application/gzip' },
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };

    const file = path.join(dir, 's3.backup');
    const backup = await runCli(['backup', '--out', file], env);
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    const entries = await readArchive(file);
    const manifest = JSON.parse(entries.get('manifest.json')!.toString('utf8'));
    expect(manifest.bundles).toEqual({ store: 's3', bucket: s3.bucket, blobs: [{ key: id, name: 'app', version: '1.0.0', size: body.length }], missing: [] });
    expect([...entries.keys()].filter((n) => n.startsWith('bundles/'))).toEqual([]);

    // Restoring it into the file store would leave every row without its blob: refused in one line.
    const restore = await runCli(['restore', file], { KERNEX_DATA_DIR: path.join(dir, 'file-target') });
    expect(restore.code).toBe(1);
    expect(restore.stderr.trim().split('\n')).toHaveLength(1);
    expect(restore.stderr).toContain('KERNEX_BUNDLE_STORE=s3');
  });
});
