import fs from 'node:fs/promises';

/** Linux's USER_HZ: the unit of the CPU times in /proc/{pid}/stat. */
const CLOCK_TICKS_PER_S = 100;

/** The fields of /proc/{pid}/stat a benchmark needs; CPU times in seconds. */
export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime of the process itself. */
  cpuS: number;
  /** cutime + cstime: children it has waited for (PostgreSQL's ended backends). */
  childrenCpuS: number;
}

/**
 * Parses one /proc/{pid}/stat line. The command name (field 2) is in
 * parentheses and may itself hold spaces or ')', so fields are counted
 * after its last ')': state is field 3, ppid 4, utime 14, stime 15,
 * cutime 16, cstime 17 (proc(5)).
 */
export function parseProcStat(text: string): ProcStat {
  const close = text.lastIndexOf(')');
  const open = text.indexOf('(');
  if (open < 0 || close < open) throw new Error('not a /proc/<pid>/stat line');
  const rest = text.slice(close + 2).trim().split(' ');
  const field = (n: number): number => {
    const v = Number(rest[n - 3]);
    if (!Number.isFinite(v)) throw new Error(`/proc stat field ${n} missing`);
    return v;
  };
  return {
    pid: Number(text.slice(0, open).trim()),
    ppid: field(4),
    cpuS: (field(14) + field(15)) / CLOCK_TICKS_PER_S,
    childrenCpuS: (field(16) + field(17)) / CLOCK_TICKS_PER_S,
  };
}

/**
 * CPU seconds of a process tree from a snapshot of stats: the root's own time,
 * the children it has reaped, and every live descendant's own time (their
 * reaped children counted too). PostgreSQL is a postmaster with a backend per
 * connection: this is its whole CPU.
 */
export function treeCpuSeconds(stats: readonly ProcStat[], rootPid: number): number {
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const root = stats.find((s) => s.pid === rootPid);
  if (!root) throw new Error(`process ${rootPid} is not running`);
  let total = 0;
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length) {
    const s = stack.pop()!;
    if (seen.has(s.pid)) continue;
    seen.add(s.pid);
    total += s.cpuS + s.childrenCpuS;
    stack.push(...(children.get(s.pid) ?? []));
  }
  return total;
}

/** utime + stime of one process, seconds. */
export async function processCpuSeconds(pid: number): Promise<number> {
  return parseProcStat(await fs.readFile(`/proc/${pid}/stat`, 'utf8')).cpuS;
}

/** CPU seconds of `rootPid` and all its descendants, from /proc now. */
export async function processTreeCpuSeconds(rootPid: number): Promise<number> {
  const stats: ProcStat[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      stats.push(parseProcStat(await fs.readFile(`/proc/${name}/stat`, 'utf8')));
    } catch {
      // ended while we listed /proc
    }
  }
  return treeCpuSeconds(stats, rootPid);
}

/**
 * Busy CPU seconds of the whole machine since boot, from the aggregate `cpu`
 * line of /proc/stat (proc(5)): user, nice, system, irq, softirq and steal
 * ticks; idle and iowait are not busy, and guest time is already in user.
 */
export function parseMachineBusySeconds(procStat: string): number {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('no aggregate cpu line in /proc/stat');
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = [user, nice, system, irq, softirq, steal ?? 0];
  if (busy.some((v) => v === undefined || !Number.isFinite(v))) throw new Error('malformed cpu line in /proc/stat');
  return busy.reduce<number>((a, b) => a + b!, 0) / CLOCK_TICKS_PER_S;
}

/** The machine's busy CPU seconds now (every process, ours and others'). */
export async function machineBusySeconds(): Promise<number> {
  return parseMachineBusySeconds(await fs.readFile('/proc/stat', 'utf8'));
}

/** The soft limit of open files from a /proc/{pid}/limits text; Infinity for "unlimited". */
export function parseOpenFilesLimit(limits: string): number {
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === 'unlimited') return Infinity;
  const n = Number(soft);
  if (!soft || !Number.isInteger(n)) throw new Error('no open-files limit in /proc limits');
  return n;
}

/** The open-files limit our children inherit (`ulimit -n`). */
export async function openFilesLimit(): Promise<number> {
  return parseOpenFilesLimit(await fs.readFile('/proc/self/limits', 'utf8'));
}
