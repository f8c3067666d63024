import type { ExecutionState } from './protocol.js';

/**
 * Named sets of execution states (DESIGN §3, §5), the one place each rule's list lives:
 * the orchestrator, the stores (as `state = any(${SET})`), the agent, the simulator and the
 * CLI all read them here, so a new state is added to every rule at once or to none.
 * Each is a frozen array, so SQL can bind it and code can `.includes()` it.
 */
type States = readonly ExecutionState[];
const states = (...list: ExecutionState[]): States => Object.freeze(list);

/** The forward path an execution follows, in order; moves along it go forward only (DESIGN §5). */
export const FORWARD_PATH: States = states('queued', 'sent', 'received', 'downloading', 'installing', 'verifying', 'succeeded');

/** States an execution ends in; `succeeded → rolled_back` is the only way out of one (DESIGN §3). */
export const TERMINAL_STATES: States = states('succeeded', 'failed', 'rolled_back', 'cancelled', 'timed_out', 'skipped');

/** States of an execution that has not ended yet: the deployment is still waiting on it. */
export const ACTIVE_STATES: States = states('queued', 'sent', 'received', 'downloading', 'installing', 'verifying');

/** Between `sent` and `verifying`: what `maxConcurrent` bounds (DESIGN §5). */
export const IN_FLIGHT_STATES: States = states('sent', 'received', 'downloading', 'installing', 'verifying');

/** Between `sent` and `verifying`: the executions the server sends `cancel` to (DESIGN §3). */
export const CANCELLABLE_STATES: States = IN_FLIGHT_STATES;

/** Ended states that count against `maxFailurePercent` (DESIGN §5). */
export const FAILURE_STATES: States = states('failed', 'timed_out', 'rolled_back');

/** Ended states that are a good outcome: `deploy --wait` exits 0 when every execution is in one (DESIGN §5). */
export const SUCCESS_STATES: States = states('succeeded', 'skipped');

/**
 * States a device reports while it works on a deploy, before it ends: an agent that restarts
 * with an execution in one resumes or settles it, and `cancel` stops it (DESIGN §3).
 */
export const DEVICE_WORKING_STATES: States = states('received', 'downloading', 'installing', 'verifying');

/**
 * Device states before the switch to the new version: the simulator can still abandon the
 * execution on `cancel`; after it, an execution that switched reports `succeeded` (DESIGN §3).
 */
export const PRE_SWITCH_STATES: States = states('received', 'downloading', 'installing');

/**
 * Device states before the install step began: nothing on disk changed yet, so an agent
 * restart runs the deploy again and a `cancel` just ends it.
 */
export const BEFORE_INSTALL_STATES: States = states('received', 'downloading');
