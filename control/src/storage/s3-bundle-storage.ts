import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StartupError } from '../errors.js';
import { BlobNotFoundError, StorageUnavailableError, type BundleStorage, type ByteRange, type StoredBlob } from './bundle-storage.js';

const KEY = /^[A-Za-z0-9._-]{1,128}$/;
/** Objects are `bundles/{key}.tar.gz`, so the bucket may hold other things beside them. */
const PREFIX = 'bundles/';
const SUFFIX = '.tar.gz';
/** Multipart part size: S3's minimum is 5 MiB; an upload holds at most `QUEUE` parts in memory. */
const PART_BYTES = 8 * 1024 * 1024;
const QUEUE = 2;

/** Where the bucket is (DESIGN §7: KERNEX_S3_*; credentials are the SDK's own AWS_* variables). */
export interface S3StorageOptions {
  /** An S3-compatible endpoint (MinIO, Ceph, ...); undefined means AWS itself. */
  endpoint: string | undefined;
  bucket: string;
  region: string;
  forcePathStyle: boolean;
  /** Static credentials; undefined lets the SDK find its own (environment, profile, instance role). */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  /** A local directory where uploads are staged and checked before they are streamed to the bucket. */
  stagingDir: string;
}

/** An S3 error that means "no such object or bucket". */
function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.name === 'NoSuchBucket' || e.$metadata?.httpStatusCode === 404;
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

/**
 * Bundle blobs in an S3-compatible bucket (DESIGN §4, §7). Uploads are checked
 * into a staging file first (bundle-archive.ts), then streamed to the bucket as
 * a multipart upload of {@link PART_BYTES} parts, never whole in memory; the
 * object appears only when the upload completes, so a blob is whole or absent.
 * Downloads are ranged GETs passed through the server (see the README's
 * "Storage"): devices keep one origin, one CA and the server's access check.
 */
export class S3BundleStorage implements BundleStorage {
  private constructor(
    private readonly client: S3Client,
    private readonly opts: S3StorageOptions,
  ) {}

  /**
   * Connects and checks the bucket exists and answers (HeadBucket). A missing
   * bucket, refused credentials or an unreachable endpoint is a
   * {@link StartupError} whose message is the operator's one line.
   */
  static async open(opts: S3StorageOptions): Promise<S3BundleStorage> {
    const client = new S3Client({
      endpoint: opts.endpoint,
      region: opts.region,
      forcePathStyle: opts.forcePathStyle,
      credentials: opts.credentials,
      // The SDK's default (CRC checksums on every request) sends a streamed body
      // aws-chunked with a trailer, which some S3-compatible servers store as
      // part of the object (s3rver kept 44-53 extra bytes). Checksums only where
      // the API requires them; the server has the blob's sha256 and devices check it.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // A black-holed endpoint must not hang a start or a request for minutes.
      requestHandler: { connectionTimeout: 5000, requestTimeout: 60_000 },
    });
    const where = opts.endpoint ?? `AWS region ${opts.region}`;
    try {
      await client.send(new HeadBucketCommand({ Bucket: opts.bucket }));
    } catch (err) {
      client.destroy();
      throw startupError(err, opts.bucket, where);
    }
    // Leftovers of uploads cut by a crash.
    await fs.rm(opts.stagingDir, { recursive: true, force: true });
    await fs.mkdir(opts.stagingDir, { recursive: true, mode: 0o700 });
    return new S3BundleStorage(client, opts);
  }

  tempPath(): string {
    return path.join(this.opts.stagingDir, `${randomUUID()}.part`);
  }

  private objectKey(key: string): string {
    if (!KEY.test(key)) throw new Error(`bad blob key '${key}'`);
    return `${PREFIX}${key}${SUFFIX}`;
  }

  async put(key: string, tempFile: string): Promise<void> {
    const Key = this.objectKey(key);
    const body = createReadStream(tempFile);
    try {
      // Multipart (a single PutObject of a buffer when smaller than one part);
      // a failed upload is aborted, so no object appears.
      await new Upload({
        client: this.client,
        params: { Bucket: this.opts.bucket, Key, Body: body, ContentType: 'application/gzip' },
        partSize: PART_BYTES,
        queueSize: QUEUE,
        leavePartsOnError: false,
      }).done();
    } catch (err) {
      throw new StorageUnavailableError('put', { cause: err });
    } finally {
      body.destroy();
    }
    await fs.rm(tempFile, { force: true });
  }

  async open(key: string, range?: ByteRange): Promise<Readable> {
    const Key = this.objectKey(key);
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.opts.bucket, Key, Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
      return res.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(key);
      throw new StorageUnavailableError('open', { cause: err });
    }
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    const Key = this.objectKey(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key }));
      return { size: Number(res.ContentLength ?? 0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new StorageUnavailableError('stat', { cause: err });
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw new StorageUnavailableError('delete', { cause: err });
    }
  }

  async *list(): AsyncIterable<StoredBlob> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.opts.bucket, Prefix: PREFIX, ContinuationToken: token }));
      } catch (err) {
        throw new StorageUnavailableError('list', { cause: err });
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key?.endsWith(SUFFIX)) continue;
        const key = o.Key.slice(PREFIX.length, -SUFFIX.length);
        if (KEY.test(key)) yield { key, size: Number(o.Size ?? 0), modifiedAt: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Closes the client's sockets. */
  close(): void {
    this.client.destroy();
  }
}

/** The one line a start that cannot use the bucket ends with. */
function startupError(err: unknown, bucket: string, where: string): StartupError {
  const e = err as Error & { code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (isNotFound(err)) return new StartupError(`KERNEX_S3_BUCKET '${bucket}' does not exist at ${where}`, { cause: err });
  if (status === 401 || status === 403) {
    return new StartupError(`S3 at ${where} refused access to bucket '${bucket}' (${status}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`, { cause: err });
  }
  if (e.name === 'CredentialsProviderError') {
    return new StartupError('no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY', { cause: err });
  }
  return new StartupError(`S3 endpoint ${where} is unreachable: ${oneLine(e.code ?? e.message ?? String(err))}`, { cause: err });
}
