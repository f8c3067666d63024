import { benchBundle, uploadBundle } from './bench-bundle.js';
import { connectedGauge, connectStorm, registerDevices, swarmClients } from './fleet.bench.js';
import { cpuSeconds, startKernexServer } from './kernex-process.js';
import { percentile } from './stats.js';
import { now } from './swarm/swarm-messages.js';

/** Figures of one command fan-out run. */
export interface FanoutRun {
  devices: number;
  /** From just before POST /api/v1/deployments to each device holding its `deploy` command, ms. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** How long POST /api/v1/deployments itself took to answer, ms. */
  postMs: number;
  /** CPU seconds per wall second from the POST to the last arrival: the server process, and the bench process (its client worker threads). */
  serverCpuShare: number;
  clientCpuShare: number;
}

/**
 * Command fan-out through the whole server: `devices` registered P-256
 * devices hold authenticated sessions subscribed to `kx/{id}/cmd` (MQTT.js in
 * worker threads); one `POST /api/v1/deployments` targets all of them; per
 * device, the time from the request to the arrival of its command. The
 * clients do not answer, so this is the dispatch alone: rows, then publishes.
 */
export async function fanoutRun(devices: number, workers: number): Promise<FanoutRun> {
  const server = await startKernexServer();
  try {
    const registered = await registerDevices(server, devices);
    // Connected at a steady 300/s: an unpaced storm of 10,000 overflows the listen backlog (ECONNRESET; 500/s did too, twice in three runs), and only the fan-out is measured here.
    const { swarm } = await connectStorm(`mqtt://127.0.0.1:${server.mqttPort}`, swarmClients(registered), workers, 300);
    try {
      await connectedGauge(server, devices);
      const bundle = await uploadBundle(server, await benchBundle('1.0.0', 0));
      const firstArrival = new Map<number, number>();
      swarm.on('receipt', (r: { clientIndex: number; at: number }) => {
        if (!firstArrival.has(r.clientIndex)) firstArrival.set(r.clientIndex, r.at);
      });
      const serverCpu0 = await cpuSeconds(server.pid);
      const clientCpu0 = process.cpuUsage();
      const start = now();
      const res = await fetch(`${server.httpUrl}/api/v1/deployments`, { method: 'POST', headers: server.adminHeaders, body: JSON.stringify({ bundleId: bundle.id, target: { all: true } }) });
      const postMs = now() - start;
      if (res.status !== 201) throw new Error(`deployment: ${res.status} ${await res.text()}`);
      await swarm.waitFor(() => firstArrival.size >= devices, 300_000, 'deploy commands');
      const wallS = (now() - start) / 1000;
      const serverCpuShare = ((await cpuSeconds(server.pid)) - serverCpu0) / wallS;
      const client = process.cpuUsage(clientCpu0);
      const clientCpuShare = (client.user + client.system) / 1e6 / wallS;
      const latencies = [...firstArrival.values()].map((at) => at - start);
      return { devices, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: Math.max(...latencies), postMs, serverCpuShare, clientCpuShare };
    } finally {
      await swarm.close();
    }
  } finally {
    await server.stop();
  }
}
