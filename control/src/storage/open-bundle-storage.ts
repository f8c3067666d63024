import path from 'node:path';
import type { ServerConfig } from '../config.js';
import type { BundleStorage } from './bundle-storage.js';
import { LocalBundleStorage } from './local-bundle-storage.js';
import { S3BundleStorage } from './s3-bundle-storage.js';

/**
 * The configured bundle storage (DESIGN §7): KERNEX_BUNDLE_DIR (default
 * KERNEX_DATA_DIR/bundles), or the S3 bucket, checked to exist and answer:
 * otherwise a StartupError with the operator's one line.
 */
export async function openBundleStorage(config: Pick<ServerConfig, 'bundleStore' | 'dataDir'>): Promise<BundleStorage> {
  const store = config.bundleStore;
  if (store.kind === 'file') return LocalBundleStorage.open(store.dir);
  return S3BundleStorage.open({
    endpoint: store.endpoint,
    bucket: store.bucket,
    region: store.region,
    forcePathStyle: store.forcePathStyle,
    credentials: store.credentials,
    // Uploads are checked on local disk before they reach the bucket.
    stagingDir: path.join(config.dataDir, 'upload-staging'),
  });
}
