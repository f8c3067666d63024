import type { Command, DeployCommand } from './device-protocol.js';
import { validateCommand } from './schemas/index.js';

/** The fields of a deploy command that differ between the devices of one batch. */
export interface CommandIdentity {
  id: string;
  executionId: string;
  issuedAt: string;
}

/** What a batch of deploy commands shares: everything but their {@link CommandIdentity}. */
export type SharedDeploy = Omit<DeployCommand, keyof CommandIdentity | 'type'>;

/** A command of a batch that failed the schema: it is not sent. */
export interface RefusedCommand {
  executionId: string;
  /** The schema's one-line reason (validateCommand.lastError()). */
  reason: string;
}

/** Stand-ins that satisfy the schema of the identity fields, to check a batch's shared part on its own. */
const PLACEHOLDER: CommandIdentity = { id: 'x', executionId: 'x', issuedAt: '' };

/**
 * A command checked against the shared schema (DESIGN §3) and serialised to
 * the payload of its `kx/{id}/cmd` message. Only its two factories make one,
 * and both check first, so a publisher given an EncodedCommand need not
 * check it again.
 */
export class EncodedCommand {
  private constructor(
    readonly type: Command['type'],
    readonly executionId: string,
    /** The JSON of the command, as published. */
    readonly payload: Buffer,
  ) {}

  /** Checks and serialises one command; throws a TypeError naming the first problem when it fails the schema. */
  static of(command: Command): EncodedCommand {
    if (!validateCommand(command)) throw new TypeError(`invalid command: ${validateCommand.lastError()}`);
    return new EncodedCommand(command.type, command.executionId, Buffer.from(JSON.stringify(command)));
  }

  /**
   * Deploy commands that share everything but their identity (one batch of a
   * deployment). The schema constrains each property on its own, so the shared
   * part is checked once, with stand-in identity fields, and serialised once;
   * each command's own fields are then checked one by one (a fast check for
   * the common case, the full schema otherwise). The payloads are the JSON of
   * `{ id, type: 'deploy', executionId, issuedAt, ...shared }`. One result per
   * identity, in order: the command, or why it was refused.
   */
  static deploys(shared: SharedDeploy, each: readonly CommandIdentity[]): Array<EncodedCommand | RefusedCommand> {
    if (!validateCommand({ ...PLACEHOLDER, type: 'deploy', ...shared })) {
      const reason = validateCommand.lastError();
      return each.map((c) => ({ executionId: c.executionId, reason }));
    }
    const out: Array<EncodedCommand | RefusedCommand> = [];
    const json = JSON.stringify(shared);
    const tail = json === '{}' ? '}' : `,${json.slice(1)}`;
    for (const c of each) {
      if (!isPlainId(c.id) || !isPlainId(c.executionId) || typeof c.issuedAt !== 'string') {
        // Rare (not what the orchestrator makes): let the schema decide, and name the problem.
        const command: DeployCommand = { ...c, type: 'deploy', ...shared };
        if (!validateCommand(command)) {
          out.push({ executionId: String(c.executionId), reason: validateCommand.lastError() });
          continue;
        }
      }
      const head = `{"id":${JSON.stringify(c.id)},"type":"deploy","executionId":${JSON.stringify(c.executionId)},"issuedAt":${JSON.stringify(c.issuedAt)}`;
      out.push(new EncodedCommand('deploy', c.executionId, Buffer.from(head + tail)));
    }
    return out;
  }
}

/** Surely valid as the schema's `id` (a string of 1 to 128 characters): at most 128 UTF-16 units are at most 128 characters. */
function isPlainId(s: unknown): boolean {
  return typeof s === 'string' && s.length >= 1 && s.length <= 128;
}
