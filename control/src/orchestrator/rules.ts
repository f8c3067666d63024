import { EXECUTION_STATES, TERMINAL_STATES, type ExecutionState } from '@kernex/shared';

/**
 * The deployment rules of DESIGN §5 as pure functions: which execution
 * transitions are allowed, how devices are split into phases, when a
 * deployment is past its failure threshold.
 */

/** States an execution passes through on its way, in order. */
const ORDER: Record<string, number> = Object.fromEntries(EXECUTION_STATES.slice(0, 6).map((s, i) => [s, i]));

/** States between `sent` and `verifying`: what `maxConcurrent` bounds, and what `cancel` is sent to (DESIGN §3). */
export const IN_FLIGHT_STATES: readonly ExecutionState[] = ['sent', 'received', 'downloading', 'installing', 'verifying'];

/** Ended states that count against `maxFailurePercent`. */
export const FAILURE_STATES: readonly ExecutionState[] = ['failed', 'timed_out', 'rolled_back'];

/** What to do with an event moving an execution from `from` to `to`. */
export type TransitionVerdict = 'apply' | 'same' | 'refuse';

/**
 * Executions move forward only (DESIGN §5); an ended execution stays ended,
 * but for `succeeded → rolled_back`, and only when the server asked that
 * rollback (DESIGN §3: `rollbackAsked`). The same state again is a progress
 * report, not a transition.
 */
export function judgeTransition(from: ExecutionState, to: ExecutionState, rollbackAsked = false): TransitionVerdict {
  if (from === to) return 'same';
  if (TERMINAL_STATES.has(from)) return from === 'succeeded' && to === 'rolled_back' && rollbackAsked ? 'apply' : 'refuse';
  if (TERMINAL_STATES.has(to)) return 'apply';
  // `queued` is the server's own state: a device never reports it.
  if (to === 'queued' || to === 'sent') return 'refuse';
  return (ORDER[to] ?? -1) > (ORDER[from] ?? -1) ? 'apply' : 'refuse';
}

/** One rollout phase as given by the operator. */
export interface Phase {
  percent: number;
  waitS: number;
}

/**
 * Reads the operator's phases as cumulative percentages (DESIGN §5: a phase's
 * `percent` is the share of the target released by the end of that phase;
 * they rise strictly and the last is 100) and turns them into the shares
 * {@link assignPhases} takes. Returns undefined for any other list: a 400.
 */
export function normalisePhases(phases: readonly Phase[]): Phase[] | undefined {
  const increasing = phases.every((p, i) => i === 0 || p.percent > phases[i - 1]!.percent);
  if (!increasing || phases.at(-1)?.percent !== 100) return undefined;
  return phases.map((p, i) => ({ ...p, percent: p.percent - (i === 0 ? 0 : phases[i - 1]!.percent) }));
}

/**
 * Splits `count` devices into phases: phase i gets its `percent` share
 * (rounded up, so a non-empty share has at least one device); the last phase
 * takes whatever the shares leave. Returns each device index's phase.
 */
export function assignPhases(count: number, phases: readonly Phase[]): number[] {
  const out: number[] = [];
  let cumulative = 0;
  let given = 0;
  phases.forEach((p, i) => {
    cumulative += p.percent;
    const last = i === phases.length - 1;
    const upTo = last ? count : Math.min(count, Math.ceil((cumulative * count) / 100));
    for (; given < upTo; given++) out.push(i);
  });
  return out;
}

/** True when failures are past `maxFailurePercent` of the executions released so far. */
export function pastThreshold(failures: number, released: number, maxFailurePercent: number): boolean {
  if (released === 0) return false;
  return (failures * 100) / released > maxFailurePercent;
}
