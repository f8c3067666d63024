import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

/** A real S3-compatible server (s3rver) on 127.0.0.1, its objects in a temp directory. */
export interface TestS3 {
  port: number;
  endpoint: string;
  bucket: string;
  /** The server's environment for a Kernex server using this bucket (KERNEX_BUNDLE_STORE=s3 and the SDK's AWS_*). */
  env: Record<string, string>;
  /** The bytes s3rver holds for object `key` (read from its directory, not through S3). */
  objectBytes(key: string): Promise<Buffer>;
  /** Stops serving (objects stay); `start` serves them again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops and removes the directory. */
  close(): Promise<void>;
}

/**
 * Starts s3rver on 127.0.0.1 port 0 with `bucket` created (none when
 * `bucket` is null: a start against it finds no bucket).
 */
export async function startS3(bucket: string | null = 'kernex'): Promise<TestS3> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-s3-'));
  let port = 0;
  let server: S3rver | undefined;
  // Stops at once: connections the SDK keeps alive (or is using) are dropped, as when S3 goes away.
  const halt = async (): Promise<void> => {
    if (!server) return;
    const closing = server.close();
    server.httpServer?.closeAllConnections();
    await closing;
    server = undefined;
  };
  const start = async (): Promise<void> => {
    if (server) return;
    server = new S3rver({ address: '127.0.0.1', port, silent: true, directory, resetOnClose: false, configureBuckets: bucket ? [{ name: bucket }] : [] });
    port = (await server.run()).port;
  };
  await start();
  const endpoint = `http://127.0.0.1:${port}`;
  const name = bucket ?? 'kernex';
  return {
    port,
    endpoint,
    bucket: name,
    env: {
      KERNEX_BUNDLE_STORE: 's3',
      KERNEX_S3_ENDPOINT: endpoint,
      KERNEX_S3_BUCKET: name,
      KERNEX_S3_REGION: 'us-east-1',
      // s3rver's own account.
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      // The SDK never looks for a cloud metadata address.
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    objectBytes: (key) => fs.readFile(path.join(directory, name, `${key}._S3rver_object`)),
    stop: halt,
    start,
    async close() {
      await halt();
      await fs.rm(directory, { recursive: true, force: true });
    },
  };
}
