import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  BEFORE_INSTALL_STATES,
  DEFAULT_HEALTH_CHECK_TIMEOUT_S,
  DEVICE_WORKING_STATES,
  SEMVER_PATTERN,
  type CancelCommand,
  type Command,
  type DeployCommand,
  type ExecutionState,
  type RollbackCommand,
} from '@kernex/shared';
import type { Logger } from 'pino';
import type { BundleInventory, CommandHandler, DeviceContext } from '../device.js';
import { InstallStepError } from '../errors.js';
import { BundleState, type ExecutionRecord } from './bundle-state.js';
import { download } from './download.js';
import { extractBundle, type ExtractOptions } from './extract.js';
import { runScript } from './run-script.js';
import { verifyBundle } from './verify.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const VERSION = new RegExp(SEMVER_PATTERN);
/** Longest an install script may run, seconds (a deploy's own `timeoutS` is used when smaller). */
const MAX_INSTALL_S = 1800;

export interface InstallerOptions {
  /** The agent's state directory; bundles live in `{stateDir}/bundles`. */
  stateDir: string;
  log: Logger;
  extract?: ExtractOptions;
  /** Download attempts without progress before giving up (tests make it small). */
  downloadAttempts?: number;
}


/**
 * Acts on `deploy`, `cancel` and `rollback` (DESIGN §3, §4) and reports every
 * state through the device's store-and-forward outbox. Layout under
 * `{stateDir}/bundles`: `{name}/{version}/` per unpacked version,
 * `{name}/current` → `{version}` (switched by symlink + rename),
 * `.downloads/{bundleId}.part` (kept so a download resumes), `state.json`.
 * One execution runs at a time; each (executionId, type) is acted on at most once.
 */
export class BundleInstaller implements CommandHandler, BundleInventory {
  private queue: Promise<void> = Promise.resolve();
  private readonly aborts = new Map<string, AbortController>();
  private readonly root: string;
  private resumed = false;

  private constructor(
    private readonly opts: InstallerOptions,
    private readonly state: BundleState,
  ) {
    this.root = path.join(opts.stateDir, 'bundles');
  }

  static async open(opts: InstallerOptions): Promise<BundleInstaller> {
    const state = await BundleState.open(path.join(opts.stateDir, 'bundles', 'state.json'));
    return new BundleInstaller(opts, state);
  }

  /** Installed bundles, name → version (telemetry `b`, device `bundles`). */
  installed(): Record<string, string> {
    return Object.fromEntries(Object.entries(this.state.installed).map(([name, b]) => [name, b.current]));
  }

  /** Resolves once every queued execution has ended (tests, orderly stop). */
  idle(): Promise<void> {
    return this.queue;
  }

  /** The path `current` points to for `name`, or undefined. */
  currentDir(name: string): string | undefined {
    const b = this.state.installed[name];
    return b ? path.join(this.root, name, b.current) : undefined;
  }

  /**
   * After a restart: downloads cut by the restart carry on; an execution that
   * was installing or verifying ends failed (or rolled_back), never runs twice.
   */
  async resume(device: DeviceContext): Promise<void> {
    if (this.resumed) return;
    this.resumed = true;
    for (const [id, rec] of this.state.executions()) {
      if (!DEVICE_WORKING_STATES.includes(rec.state)) continue;
      if (BEFORE_INSTALL_STATES.includes(rec.state) && rec.command) {
        this.enqueue(rec.command, device);
      } else {
        const current = rec.name ? this.state.installed[rec.name]?.current : undefined;
        if (current !== undefined && current === rec.version) await this.finish(device, id, rec, 'succeeded');
        else if (rec.handled.includes('cancel')) await this.finish(device, id, rec, 'cancelled');
        else await this.finish(device, id, rec, current !== undefined ? 'rolled_back' : 'failed', 'the agent restarted during the install');
      }
    }
  }

  async handle(command: Command, device: DeviceContext): Promise<void> {
    await this.resume(device);
    const rec = this.state.execution(command.executionId);
    if (rec?.handled.includes(command.type)) {
      device.log.debug({ executionId: command.executionId, type: command.type }, 'command already acted on; ignored');
      return;
    }
    switch (command.type) {
      case 'deploy':
        return this.takeDeploy(command, device, rec);
      case 'cancel':
        return this.cancel(command, device, rec);
      case 'rollback':
        return this.rollback(command, device, rec);
    }
  }

  private async takeDeploy(cmd: DeployCommand, device: DeviceContext, rec: ExecutionRecord | undefined): Promise<void> {
    if (rec) {
      // A cancel came first: the deploy is answered by the cancelled already reported.
      await this.state.setExecution(cmd.executionId, { ...rec, handled: [...rec.handled, 'deploy'] });
      return;
    }
    const { name, version } = cmd.bundle;
    const fresh: ExecutionRecord = { state: 'received', handled: ['deploy'], command: cmd, name, version, at: Date.now() };
    await this.state.setExecution(cmd.executionId, fresh);
    await this.report(device, cmd.executionId, 'received');
    this.enqueue(cmd, device);
  }

  private enqueue(cmd: DeployCommand, device: DeviceContext): void {
    const abort = new AbortController();
    this.aborts.set(cmd.executionId, abort);
    this.queue = this.queue
      .then(() => this.deploy(cmd, device, abort.signal))
      .catch((err: unknown) => device.log.error({ err, executionId: cmd.executionId }, 'deploy failed unexpectedly'))
      .finally(() => this.aborts.delete(cmd.executionId));
  }

  private async cancel(cmd: CancelCommand, device: DeviceContext, rec: ExecutionRecord | undefined): Promise<void> {
    const id = cmd.executionId;
    if (!rec) {
      await this.state.setExecution(id, { state: 'cancelled', handled: ['cancel'], at: Date.now() });
      await this.report(device, id, 'cancelled');
      return;
    }
    await this.state.setExecution(id, { ...rec, handled: [...rec.handled, 'cancel'] });
    // DESIGN §3: cancel stops an execution that has not switched yet: the download is
    // abandoned, or the install or health-check process group killed, and `current`
    // stays on the previous version. One that already switched reports succeeded.
    const running = this.aborts.get(id);
    if (running && DEVICE_WORKING_STATES.includes(rec.state)) {
      // The deploy step sees the abort, cleans up and reports cancelled.
      running.abort();
    } else if (BEFORE_INSTALL_STATES.includes(rec.state)) {
      // No step running (a restart before resume): nothing was installed yet.
      await this.finish(device, id, this.state.execution(id)!, 'cancelled');
    } else {
      device.log.info({ executionId: id, state: rec.state }, 'cancel arrived after the switch; the execution goes on');
    }
  }

  private async rollback(cmd: RollbackCommand, device: DeviceContext, rec: ExecutionRecord | undefined): Promise<void> {
    const id = cmd.executionId;
    if (!rec || rec.state !== 'succeeded' || rec.name !== cmd.name) {
      device.log.warn({ executionId: id, state: rec?.state }, 'rollback for an execution that did not succeed here; ignored');
      if (rec) await this.state.setExecution(id, { ...rec, handled: [...rec.handled, 'rollback'] });
      return;
    }
    const name = cmd.name;
    const previous = rec.previous ?? undefined;
    if (previous && (await exists(path.join(this.root, name, previous)))) {
      await this.switchCurrent(name, previous);
      await this.state.setInstalled(name, { current: previous });
    } else {
      // Nothing was installed before this execution: going back means removing it.
      await fs.rm(path.join(this.root, name, 'current'), { force: true });
      await this.state.setInstalled(name, undefined);
    }
    await this.state.setExecution(id, { ...rec, handled: [...rec.handled, 'rollback'] });
    device.log.info({ executionId: id, name, to: previous ?? null }, 'rolled back');
    await this.finish(device, id, this.state.execution(id)!, 'rolled_back');
  }

  private async deploy(cmd: DeployCommand, device: DeviceContext, signal: AbortSignal): Promise<void> {
    const id = cmd.executionId;
    const { bundle } = cmd;
    const log = device.log.child({ mod: 'installer', executionId: id, bundle: `${bundle.name}@${bundle.version}` });
    const rec = (): ExecutionRecord => this.state.execution(id)!;
    if (!NAME.test(bundle.name) || !VERSION.test(bundle.version)) {
      return this.finish(device, id, rec(), 'failed', `bad bundle name or version '${bundle.name}' '${bundle.version}'`);
    }
    const before = this.state.installed[bundle.name]?.current;
    if (before === bundle.version) return this.finish(device, id, rec(), 'skipped');
    if (signal.aborted) return this.finish(device, id, rec(), 'cancelled');

    const part = path.join(this.root, '.downloads', `${bundle.id.replace(/[^A-Za-z0-9-]/g, '_')}.part`);
    const fail = (state: ExecutionState, err: unknown): Promise<void> => this.finish(device, id, rec(), state, (err as Error).message);
    try {
      await this.step(device, id, 'downloading');
      await fs.mkdir(path.dirname(part), { recursive: true });
      await download({
        url: new URL(bundle.url, device.server).toString(),
        http: device.http,
        file: part,
        size: bundle.size,
        sha256: bundle.sha256,
        token: () => device.httpToken(),
        signal,
        log,
        attempts: this.opts.downloadAttempts,
      });
      await verifyBundle(part, bundle, device.serverPublicKey).catch(async (err: unknown) => {
        await fs.rm(part, { force: true });
        throw err;
      });
    } catch (err) {
      if (signal.aborted) return this.finish(device, id, rec(), 'cancelled');
      log.warn({ err: (err as Error).message }, 'download failed');
      return fail('failed', err);
    }
    if (signal.aborted) return this.finish(device, id, rec(), 'cancelled');

    await this.step(device, id, 'installing');
    const dir = path.join(this.root, bundle.name, bundle.version);
    const failedInstall = before !== undefined ? 'rolled_back' : 'failed';
    try {
      const manifest = await this.unpack(part, dir);
      if (manifest.name !== bundle.name || manifest.version !== bundle.version) {
        throw new InstallStepError(`archive holds ${manifest.name}@${manifest.version}, not the bundle sent`);
      }
      const env = { KERNEX_BUNDLE_NAME: bundle.name, KERNEX_BUNDLE_VERSION: bundle.version, KERNEX_BUNDLE_DIR: dir, KERNEX_PREVIOUS_DIR: before ? path.join(this.root, bundle.name, before) : '' };
      if (signal.aborted) throw new InstallStepError('cancelled');
      const installed = await runScript({ script: manifest.install, cwd: dir, timeoutS: Math.min(cmd.timeoutS, MAX_INSTALL_S), env, label: 'install', signal });
      if (!installed.ok) throw new InstallStepError(installed.error);
      if (signal.aborted) throw new InstallStepError('cancelled');
      await this.step(device, id, 'verifying');
      if (manifest.healthCheck) {
        const timeoutS = manifest.healthCheck.timeoutS ?? DEFAULT_HEALTH_CHECK_TIMEOUT_S;
        const checked = await runScript({ script: manifest.healthCheck.script, cwd: dir, timeoutS, env, label: 'health check', signal });
        if (!checked.ok) throw new InstallStepError(checked.error);
      }
      if (signal.aborted) throw new InstallStepError('cancelled');
    } catch (err) {
      // `current` never moved: the previous version is still the one running.
      if (before !== bundle.version) await fs.rm(dir, { recursive: true, force: true });
      if (signal.aborted) {
        log.info({ keeping: before ?? null }, 'install cancelled; the current version stays');
        return this.finish(device, id, rec(), 'cancelled');
      }
      log.warn({ err: (err as Error).message, keeping: before ?? null }, 'install failed; the current version stays');
      return fail(failedInstall, err);
    }

    // Switching: from here on a cancel is too late (DESIGN §3); no await since the last check.
    this.aborts.delete(id);
    await this.switchCurrent(bundle.name, bundle.version);
    await this.state.setInstalled(bundle.name, { current: bundle.version, ...(before ? { previous: before } : {}) });
    await this.state.setExecution(id, { ...rec(), previous: before ?? null });
    await this.prune(bundle.name, [bundle.version, ...(before ? [before] : [])]);
    log.info({ previous: before ?? null }, 'bundle installed');
    await this.finish(device, id, rec(), 'succeeded');
  }

  /** Extracts into a staging directory, then renames it to `dir`; removes the download. */
  private async unpack(part: string, dir: string): Promise<Awaited<ReturnType<typeof extractBundle>>> {
    const staging = path.join(path.dirname(dir), `.staging-${randomUUID()}`);
    try {
      const manifest = await extractBundle(part, staging, this.opts.extract);
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rename(staging, dir);
      return manifest;
    } catch (err) {
      throw new InstallStepError(`extract failed: ${(err as Error).message}`, { cause: err });
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
      await fs.rm(part, { force: true });
    }
  }

  /** Points `{name}/current` at `version` atomically: a new symlink renamed over the old. */
  private async switchCurrent(name: string, version: string): Promise<void> {
    const link = path.join(this.root, name, 'current');
    const tmp = `${link}.${randomUUID()}`;
    await fs.symlink(version, tmp);
    await fs.rename(tmp, link);
  }

  /** Removes version directories other than `keep`. */
  private async prune(name: string, keep: string[]): Promise<void> {
    for (const entry of await fs.readdir(path.join(this.root, name))) {
      if (entry === 'current' || entry.startsWith('.') || keep.includes(entry)) continue;
      await fs.rm(path.join(this.root, name, entry), { recursive: true, force: true });
    }
  }

  private async step(device: DeviceContext, id: string, state: ExecutionState): Promise<void> {
    await this.state.setExecution(id, { ...this.state.execution(id)!, state });
    await this.report(device, id, state);
  }

  private async finish(device: DeviceContext, id: string, rec: ExecutionRecord, state: ExecutionState, error?: string): Promise<void> {
    await this.state.setExecution(id, { ...rec, state, ...(error ? { error } : {}) });
    await this.report(device, id, state, error);
  }

  private report(device: DeviceContext, executionId: string, state: ExecutionState, error?: string): Promise<void> {
    return device.report({ executionId, state, ts: Date.now(), ...(error ? { error: error.slice(0, 2048) } : {}) });
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
