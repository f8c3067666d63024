import fs from 'node:fs/promises';
import path from 'node:path';
import type { DeployCommand, ExecutionState } from '@kernex/shared';
import type { SoakRecord } from './soak.js';

/** What the agent remembers about one execution, so it acts on each (executionId, type) at most once. */
export interface ExecutionRecord {
  state: ExecutionState;
  /** Command types already acted on. */
  handled: Array<'deploy' | 'cancel' | 'rollback'>;
  /** The deploy command, kept so an interrupted download resumes after a restart. */
  command?: DeployCommand;
  name?: string;
  version?: string;
  /** Version that was current before this execution switched it (for `rollback`); null: none. */
  previous?: string | null;
  error?: string;
  /** Set while the execution soaks after its switch (DESIGN §5), so a restart resumes it. */
  soak?: SoakRecord;
  at: number;
}

/** Installed bundles: the current version and the one kept before it. */
export interface InstalledBundle {
  current: string;
  previous?: string;
}

interface StateFile {
  installed: Record<string, InstalledBundle>;
  executions: Record<string, ExecutionRecord>;
}

/** Most executions remembered; older ones are forgotten first. */
const MAX_EXECUTIONS = 1000;

/**
 * The installer's persistent state (`{stateDir}/bundles/state.json`), written
 * whole to a temporary file, synced, then renamed over the old one: a crash
 * leaves either the old or the new state, never half of one.
 */
export class BundleState {
  private constructor(
    private readonly file: string,
    private data: StateFile,
  ) {}

  static async open(file: string): Promise<BundleState> {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    let data: StateFile = { installed: {}, executions: {} };
    try {
      data = JSON.parse(await fs.readFile(file, 'utf8')) as StateFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`bundle state ${file} is unreadable: ${(err as Error).message}`, { cause: err });
    }
    return new BundleState(file, data);
  }

  get installed(): Readonly<Record<string, InstalledBundle>> {
    return this.data.installed;
  }

  execution(id: string): ExecutionRecord | undefined {
    return this.data.executions[id];
  }

  executions(): Array<[string, ExecutionRecord]> {
    return Object.entries(this.data.executions);
  }

  async setExecution(id: string, record: ExecutionRecord): Promise<void> {
    this.data.executions[id] = { ...record, at: Date.now() };
    const ids = Object.keys(this.data.executions);
    if (ids.length > MAX_EXECUTIONS) {
      const oldest = ids.sort((a, b) => this.data.executions[a]!.at - this.data.executions[b]!.at).slice(0, ids.length - MAX_EXECUTIONS);
      for (const old of oldest) delete this.data.executions[old];
    }
    await this.save();
  }

  async setInstalled(name: string, value: InstalledBundle | undefined): Promise<void> {
    if (value) this.data.installed[name] = value;
    else delete this.data.installed[name];
    await this.save();
  }

  private saving: Promise<void> = Promise.resolve();

  /** Saves one after another: two renames of one temporary file would race. */
  private save(): Promise<void> {
    const next = this.saving.then(() => this.write());
    this.saving = next.catch(() => {});
    return next;
  }

  private async write(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const handle = await fs.open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(this.data));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, this.file);
  }
}
