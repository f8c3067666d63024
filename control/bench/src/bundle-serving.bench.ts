import { createReadStream } from 'node:fs';
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import { benchBundle, uploadBundle } from './bench-bundle.js';
import { cpuSeconds, startKernexServer } from './kernex-process.js';
import { now } from './swarm/swarm-messages.js';

/** Figures of one bundle-serving run. */
export interface BundleServingRun {
  /** Aggregate throughput of `downloads` concurrent GETs of the blob endpoint, MiB/s. */
  serverMiBps: number;
  /** The same bytes read straight from the blob file, `downloads` streams at once, MiB/s (what the disk and page cache give). */
  diskMiBps: number;
  bundleBytes: number;
  /** CPU seconds per second used while serving, by the server process and by the downloading clients (1 = one core). */
  serverCpuShare: number;
  clientCpuShare: number;
}

const MIB = 1024 * 1024;

/** GETs `url` with node:http (lighter than fetch's web streams) and counts the body's bytes. */
function download(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve(n));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/**
 * Bundle serving: `downloads` clients GET `/api/v1/bundles/{id}/blob` at
 * once (admin key, whole file); the reference reads the stored blob file with
 * as many concurrent streams in the bench process.
 */
export async function bundleServingRun(downloads: number, payloadMiB: number): Promise<BundleServingRun> {
  const server = await startKernexServer();
  try {
    const bundle = await uploadBundle(server, await benchBundle('1.0.0', payloadMiB * MIB));
    const url = `${server.httpUrl}/api/v1/bundles/${bundle.id}/blob`;
    const serverCpu0 = await cpuSeconds(server.pid);
    const benchCpu0 = process.cpuUsage();
    const t0 = now();
    const got = await Promise.all(Array.from({ length: downloads }, () => download(url, server.adminHeaders)));
    const serverS = (now() - t0) / 1000;
    const serverCpuShare = ((await cpuSeconds(server.pid)) - serverCpu0) / serverS;
    const bench = process.cpuUsage(benchCpu0);
    const clientCpuShare = (bench.user + bench.system) / 1e6 / serverS;
    if (got.some((n) => n !== bundle.size)) throw new Error('a download was short');

    const file = await findBlob(path.join(server.dataDir, 'bundles'), bundle.size);
    const t1 = now();
    await Promise.all(
      Array.from({ length: downloads }, () => new Promise<void>((resolve, reject) => createReadStream(file).on('data', () => {}).on('end', resolve).on('error', reject))),
    );
    const diskS = (now() - t1) / 1000;
    const total = (downloads * bundle.size) / MIB;
    return { serverMiBps: total / serverS, diskMiBps: total / diskS, bundleBytes: bundle.size, serverCpuShare, clientCpuShare };
  } finally {
    await server.stop();
  }
}

/** The stored blob: the one file of that size under the bundles directory. */
async function findBlob(dir: string, size: number): Promise<string> {
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const p = path.join(entry.parentPath, entry.name);
    if ((await fs.stat(p)).size === size) return p;
  }
  throw new Error(`no blob of ${size} bytes under ${dir}`);
}
