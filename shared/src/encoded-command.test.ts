import { describe, expect, it } from 'vitest';
import type { Command, DeployCommand } from './device-protocol.js';
import { EncodedCommand, type CommandIdentity, type SharedDeploy } from './encoded-command.js';
import { validateCommand } from './schemas/index.js';

const shared: SharedDeploy = {
  timeoutS: 600,
  soakS: 30,
  bundle: { id: 'b1', name: 'app', version: '1.2.3', sha256: 'a'.repeat(64), size: 1234, url: 'https://h/api/v1/bundles/b1/blob', signature: 'c2ln' },
};
const identity = (n: number): CommandIdentity => ({ id: `c${n}`, executionId: `e${n}`, issuedAt: '2026-12-01T12:00:00.000Z' });
const decode = (c: EncodedCommand): unknown => JSON.parse(c.payload.toString('utf8'));

describe('encoded commands', () => {
  it('encodes a batch of deploys as the JSON of each whole command, each valid on its own', () => {
    const out = EncodedCommand.deploys(shared, [identity(1), identity(2)]);
    expect(out).toHaveLength(2);
    out.forEach((c, i) => {
      expect(c).toBeInstanceOf(EncodedCommand);
      const expected: DeployCommand = { ...identity(i + 1), type: 'deploy', ...shared };
      expect(decode(c as EncodedCommand)).toEqual(expected);
      expect(validateCommand(decode(c as EncodedCommand))).toBe(true);
      expect(c).toMatchObject({ type: 'deploy', executionId: `e${i + 1}` });
    });
  });

  it('refuses every command of a batch whose shared part fails the schema, naming the field', () => {
    const bad = { ...shared, bundle: { ...shared.bundle, url: '' } };
    const out = EncodedCommand.deploys(bad, [identity(1), identity(2)]);
    expect(out).toEqual([
      { executionId: 'e1', reason: expect.stringContaining('/bundle/url') },
      { executionId: 'e2', reason: expect.stringContaining('/bundle/url') },
    ]);
  });

  it('refuses only the command whose own fields fail the schema, and encodes the rest', () => {
    const tooLong = { ...identity(2), id: 'x'.repeat(129) };
    const notString = { ...identity(3), issuedAt: 5 as unknown as string };
    const out = EncodedCommand.deploys(shared, [identity(1), tooLong, notString, identity(4)]);
    expect(out[0]).toBeInstanceOf(EncodedCommand);
    expect(out[1]).toEqual({ executionId: 'e2', reason: expect.stringContaining('/id') });
    expect(out[2]).toEqual({ executionId: 'e3', reason: expect.stringContaining('/issuedAt') });
    expect(decode(out[3] as EncodedCommand)).toMatchObject({ id: 'c4', executionId: 'e4' });
  });

  it('takes a long id the schema allows (128 characters, more UTF-16 units) through the full check', () => {
    const emoji = '\u{1F600}'.repeat(100); // 100 characters, 200 UTF-16 units
    const out = EncodedCommand.deploys(shared, [{ ...identity(1), id: emoji }]);
    expect(decode(out[0] as EncodedCommand)).toMatchObject({ id: emoji });
  });

  it('checks a single command against the schema before encoding it', () => {
    const cancel: Command = { id: 'c', type: 'cancel', executionId: 'e', issuedAt: 'now' };
    expect(decode(EncodedCommand.of(cancel))).toEqual(cancel);
    expect(() => EncodedCommand.of({ type: 'deploy' } as never)).toThrow(TypeError);
    expect(() => EncodedCommand.of({ ...cancel, type: 'rollback' } as never)).toThrow(/name/);
  });
});
