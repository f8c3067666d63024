import { createHash } from 'node:crypto';
import { PRE_SWITCH_STATES, type Command, type DeployCommand, type ExecutionState, type RollbackCommand } from '@kernex/shared';
import type { BundleInventory, CommandHandler, DeviceContext } from '../device.js';

/** How a simulated device behaves when told to deploy. */
export interface SimInstallerOptions {
  /** Download the bundle for real (HTTP Range requests); otherwise the transfer is simulated. */
  download: boolean;
  /** Share of installs that fail (0..1); a failure rolls back when there was a previous version. */
  failRate: number;
  /** How long the simulated install takes, ms. */
  installMs: number;
  /** Called on every state this device reports (the simulator's counters). */
  onState?: (executionId: string, state: ExecutionState) => void;
  /** Called with the bytes of each real download chunk. */
  onBytes?: (n: number) => void;
}

interface SimExecution {
  state: ExecutionState;
  name?: string;
  /** The version installed before this execution (undefined: none). */
  previous?: string;
  cancelled: boolean;
}

/** Bytes per Range request: small enough that a 10 MB bundle really resumes chunk by chunk. */
const CHUNK_BYTES = 1024 * 1024;
/** Speed of a simulated transfer (bytes/s), and its longest duration. */
const SIMULATED_BPS = 10 * 1024 * 1024;
const SIMULATED_MAX_MS = 5000;

/**
 * The simulator's command handler: follows the contract (DESIGN §3-§5) —
 * `received → downloading → installing → verifying → succeeded`, or `failed`
 * / `rolled_back`; `cancel` → `cancelled`; `rollback` → `rolled_back`; each
 * (executionId, type) acted on at most once — but installs nothing: the
 * install is a timer and its outcome a coin weighted by `failRate`. The
 * download is real (authenticated, in Range chunks, sha256 and size checked)
 * when `download` is set, so a sample of the fleet loads the blob endpoint.
 */
export class SimulatedInstaller implements CommandHandler, BundleInventory {
  private readonly handled = new Set<string>();
  private readonly executions = new Map<string, SimExecution>();
  private readonly bundles: Record<string, string> = {};
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: SimInstallerOptions) {}

  installed(): Record<string, string> {
    return { ...this.bundles };
  }

  async handle(command: Command, device: DeviceContext): Promise<void> {
    const key = `${command.executionId}:${command.type}`;
    if (this.handled.has(key)) return; // DESIGN §3: at most once per (executionId, type)
    this.handled.add(key);
    switch (command.type) {
      case 'deploy': {
        const rec = this.executions.get(command.executionId);
        if (rec?.cancelled) return; // the cancel came first and was answered
        this.executions.set(command.executionId, { state: 'received', name: command.bundle.name, cancelled: false });
        await this.report(device, command.executionId, 'received');
        // The work runs after the command is acknowledged; one execution at a time, as the agent does.
        this.queue = this.queue.then(() => this.deploy(command, device)).catch((err: Error) => device.log.error({ err: err.message }, 'simulated deploy failed'));
        return;
      }
      case 'cancel':
        return this.cancel(command.executionId, device);
      case 'rollback':
        return this.rollback(command, device);
    }
  }

  private async cancel(executionId: string, device: DeviceContext): Promise<void> {
    const rec = this.executions.get(executionId);
    if (!rec) {
      this.executions.set(executionId, { state: 'cancelled', cancelled: true });
      return this.report(device, executionId, 'cancelled');
    }
    if (PRE_SWITCH_STATES.includes(rec.state)) rec.cancelled = true; // deploy() sees it at its next step and reports cancelled
  }

  private async rollback(command: RollbackCommand, device: DeviceContext): Promise<void> {
    const rec = this.executions.get(command.executionId);
    if (rec?.state !== 'succeeded') {
      device.log.info({ executionId: command.executionId, state: rec?.state }, 'rollback of an execution that did not succeed; nothing to do');
      return;
    }
    if (rec.previous === undefined) delete this.bundles[command.name];
    else this.bundles[command.name] = rec.previous;
    await this.report(device, command.executionId, 'rolled_back');
  }

  private async deploy(cmd: DeployCommand, device: DeviceContext): Promise<void> {
    const id = cmd.executionId;
    const rec = this.executions.get(id)!;
    const { name, version } = cmd.bundle;
    if (rec.cancelled) return this.report(device, id, 'cancelled');
    rec.previous = this.bundles[name];
    if (rec.previous === version) return this.report(device, id, 'skipped');
    await this.report(device, id, 'downloading', { progress: 0 });
    try {
      if (this.opts.download) await this.download(cmd, device);
      else await sleep(Math.min(SIMULATED_MAX_MS, (cmd.bundle.size / SIMULATED_BPS) * 1000));
    } catch (err) {
      return this.report(device, id, 'failed', { error: `download failed: ${(err as Error).message}` });
    }
    if (rec.cancelled) return this.report(device, id, 'cancelled');
    await this.report(device, id, 'installing');
    await sleep(this.opts.installMs);
    if (rec.cancelled) return this.report(device, id, 'cancelled');
    await this.report(device, id, 'verifying');
    if (Math.random() < this.opts.failRate) {
      // The previous version stays (DESIGN §4): rolled_back when there was one, failed otherwise.
      return this.report(device, id, rec.previous === undefined ? 'failed' : 'rolled_back', { error: 'simulated install failure' });
    }
    this.bundles[name] = version;
    await this.report(device, id, 'succeeded');
  }

  /** GETs the blob in Range chunks with the device's HTTP token, checking size and sha256. */
  private async download(cmd: DeployCommand, device: DeviceContext): Promise<void> {
    const url = new URL(cmd.bundle.url, device.server);
    const hash = createHash('sha256');
    let offset = 0;
    while (offset < cmd.bundle.size) {
      const end = Math.min(cmd.bundle.size, offset + CHUNK_BYTES) - 1;
      const res = await device.http.stream(url, { headers: { authorization: `Bearer ${await device.httpToken()}`, range: `bytes=${offset}-${end}` } });
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
      if (status !== 206 && !(status === 200 && offset === 0)) throw new Error(`blob answered ${status}`);
      const body = Buffer.concat(chunks);
      hash.update(body);
      offset += body.length;
      this.opts.onBytes?.(body.length);
      if (body.length === 0) throw new Error('blob ended early');
      if (status === 200) break;
    }
    if (offset !== cmd.bundle.size) throw new Error(`size ${offset}, expected ${cmd.bundle.size}`);
    if (hash.digest('hex') !== cmd.bundle.sha256) throw new Error('sha256 mismatch');
  }

  private async report(device: DeviceContext, executionId: string, state: ExecutionState, extra: { progress?: number; error?: string } = {}): Promise<void> {
    const rec = this.executions.get(executionId);
    if (rec) rec.state = state;
    this.opts.onState?.(executionId, state);
    await device.report({ executionId, state, ...extra, ts: Date.now() });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
