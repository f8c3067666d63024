/** Exit codes of the operator commands (README: CLI). */
export const EXIT = {
  /** The request failed: the server refused it, or could not be reached. */
  failed: 1,
  /** A deployment waited on with --wait was aborted (DESIGN §5). */
  deploymentAborted: 3,
  /** A deployment waited on with --wait ended with an execution not succeeded or skipped: failed, rolled back, timed out, cancelled. */
  deploymentFailed: 4,
} as const;

/** An error the CLI reports as one line (`kernex: <message>`), never with a stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The server refused a request; carries the contract's error body (DESIGN §6). */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${message} (${status} ${code})`);
    this.name = 'ApiError';
  }
}
