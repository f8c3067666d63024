import { describe, expect, it } from 'vitest';
import { ACTIVE_STATES, BEFORE_INSTALL_STATES, CANCELLABLE_STATES, DEVICE_WORKING_STATES, FAILURE_STATES, FORWARD_PATH, IN_FLIGHT_STATES, PRE_SWITCH_STATES, SUCCESS_STATES, TERMINAL_STATES } from './execution-states.js';
import { EXECUTION_STATES } from './protocol.js';

const sorted = (l: readonly string[]): string[] => [...l].sort();

describe('execution state sets', () => {
  it('splits every state into active or terminal, never both', () => {
    expect(sorted([...ACTIVE_STATES, ...TERMINAL_STATES])).toEqual(sorted(EXECUTION_STATES));
  });

  it('bounds and cancels exactly the states between sent and verifying (DESIGN §3, §5)', () => {
    const between = EXECUTION_STATES.slice(EXECUTION_STATES.indexOf('sent'), EXECUTION_STATES.indexOf('verifying') + 1);
    expect(IN_FLIGHT_STATES).toEqual(between);
    expect(CANCELLABLE_STATES).toEqual(between);
  });

  it('counts failed, timed_out and rolled_back as failures, and succeeded and skipped as success', () => {
    expect(sorted(FAILURE_STATES)).toEqual(['failed', 'rolled_back', 'timed_out']);
    expect(sorted(SUCCESS_STATES)).toEqual(['skipped', 'succeeded']);
    expect(FAILURE_STATES.every((s) => TERMINAL_STATES.includes(s))).toBe(true);
  });

  it('walks the forward path from queued to succeeded', () => {
    expect(FORWARD_PATH[0]).toBe('queued');
    expect(FORWARD_PATH.at(-1)).toBe('succeeded');
    expect(Object.isFrozen(TERMINAL_STATES)).toBe(true);
  });

  it('keeps the device-side sets on the forward path, before verifying ends', () => {
    for (const s of [...BEFORE_INSTALL_STATES, ...PRE_SWITCH_STATES, ...DEVICE_WORKING_STATES]) expect(ACTIVE_STATES).toContain(s);
    expect(DEVICE_WORKING_STATES).not.toContain('queued');
    expect(DEVICE_WORKING_STATES).not.toContain('sent');
  });
});
