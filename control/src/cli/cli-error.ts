/** Exit codes of the operator commands (README: CLI). */
export const EXIT = {
  /** The request failed: the server refused it, or could not be reached. */
  failed: 1,
  /** A deployment waited on with --wait ended aborted or cancelled. */
  deploymentNotCompleted: 3,
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
