import { FORWARD_PATH, TERMINAL_STATES, type ExecutionState } from '@kernex/shared';
import type { Phase } from '../store/deployments.pg.js';

/**
 * The deployment rules of DESIGN §5 as pure functions: which execution
 * transitions are allowed, how devices are split into phases, when a
 * deployment is past its failure threshold.
 */

/** Position of each state on the forward path, for forward-only moves. */
const ORDER: Record<string, number> = Object.fromEntries(FORWARD_PATH.map((s, i) => [s, i]));

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
  if (TERMINAL_STATES.includes(from)) return from === 'succeeded' && to === 'rolled_back' && rollbackAsked ? 'apply' : 'refuse';
  if (TERMINAL_STATES.includes(to)) return 'apply';
  // `queued` is the server's own state: a device never reports it.
  if (to === 'queued' || to === 'sent') return 'refuse';
  return (ORDER[to] ?? -1) > (ORDER[from] ?? -1) ? 'apply' : 'refuse';
}


/**
 * What is wrong with a list of phases, or undefined when nothing is. Percents are
 * cumulative (DESIGN §5): each is the share of the target released by the end of its
 * phase, so they rise strictly and the last is 100. The message names the field.
 */
export function phasesProblem(phases: readonly Phase[]): string | undefined {
  for (let i = 1; i < phases.length; i++) {
    if (!(phases[i]!.percent > phases[i - 1]!.percent)) {
      return `body.rollout.phases.${i}.percent must be more than the phase before it: percents are cumulative (the share released by the end of the phase)`;
    }
  }
  if (phases.length > 0 && phases.at(-1)!.percent !== 100) {
    return `body.rollout.phases.${phases.length - 1}.percent must be 100: percents are cumulative and the last phase releases the whole target`;
  }
  return undefined;
}

/**
 * Splits `count` devices into phases with cumulative percents (DESIGN §5): phase i
 * releases devices up to its `percent` of the target (rounded up, so a non-empty
 * phase has at least one device); the last phase takes the rest. Returns each
 * device index's phase.
 */
export function assignPhases(count: number, phases: readonly Phase[]): number[] {
  const out: number[] = [];
  let given = 0;
  phases.forEach((p, i) => {
    const last = i === phases.length - 1;
    const upTo = last ? count : Math.min(count, Math.ceil((p.percent * count) / 100));
    for (; given < upTo; given++) out.push(i);
  });
  return out;
}

/** True when failures are past `maxFailurePercent` of the executions released so far. */
export function pastThreshold(failures: number, released: number, maxFailurePercent: number): boolean {
  if (released === 0) return false;
  return (failures * 100) / released > maxFailurePercent;
}
