/**
 * Every error `shared` throws, declared once, each with a stable `code` (STYLE: errors;
 * the README's "Agent and library errors" table lists them). Callers tell them apart by
 * class or code, never by message; causes are kept (`{ cause }`).
 */

/** Base of the errors `shared` and the agent declare: a stable `code`, the cause kept, the class name as `name`. */
export abstract class CodedError extends Error {
  abstract readonly code: string;
  constructor(message?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Why a token was refused; `reason` is a stable label for metrics. */
export class JwtError extends CodedError {
  readonly code = 'KX_JWT_INVALID';
  constructor(
    readonly reason:
      | 'malformed'
      | 'bad_signature'
      | 'wrong_alg'
      | 'wrong_sub'
      | 'wrong_aud'
      | 'expired'
      | 'not_yet_valid'
      | 'too_long',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Why a public key was refused. */
export class KeyError extends CodedError {
  readonly code = 'KX_KEY_INVALID';
}

/** An entry the rules refuse; `entry` names it as it appeared in the archive. */
export class UnsafeEntryError extends CodedError {
  readonly code = 'KX_BUNDLE_UNSAFE_ENTRY';
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super(`unsafe entry '${entry}': ${reason}`);
  }
}

/** An archive whose gzip stream inflates to more than the unpacked bound. */
export class ArchiveTooLargeError extends CodedError {
  readonly code = 'KX_ARCHIVE_TOO_LARGE';
  constructor(readonly maxBytes: number) {
    super(`archive inflates to more than ${maxBytes} bytes`);
  }
}
