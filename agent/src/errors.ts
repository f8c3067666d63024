/**
 * Every error the agent and the simulator throw, declared once, each with a stable `code`
 * (STYLE: errors; the README's "Agent and library errors" table lists them). Causes are
 * kept (`{ cause }`).
 */

import { CodedError } from '@kernex/shared';

/** Every bad value, one line each, naming the flag or variable. */
export class AgentConfigError extends CodedError {
  readonly code = 'KX_AGENT_CONFIG';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

/** Why a registration did not succeed; `retry` says whether trying again later can help. */
export class RegistrationError extends CodedError {
  readonly code = 'KX_REGISTRATION';
  constructor(
    readonly kind: 'unreachable' | 'refused' | 'bad_proof' | 'bad_token' | 'invalid' | 'server',
    message: string,
    readonly retry: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A download that ended for a reason retrying will not fix (HTTP 4xx, too large, cancelled). */
export class DownloadError extends CodedError {
  readonly code = 'KX_DOWNLOAD';
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
  /** How long the server asked to wait before the next attempt (its `Retry-After`), ms. */
  readonly retryAfterMs: number | undefined;
}

/** A downloaded blob that is not the bundle the server signed. */
export class VerifyError extends CodedError {
  readonly code = 'KX_VERIFY';
}

/** A failure that ends the simulation before any device starts; its message is one line for the user. */
export class SimulationError extends CodedError {
  readonly code = 'KX_SIMULATION';
}

/** A bundle whose archive unpacked but whose manifest is unreadable or invalid (DESIGN §4). */
export class BundleInvalidError extends CodedError {
  readonly code = 'KX_BUNDLE_INVALID';
}

/** An install step that failed; its message is the execution event's `error` text. */
export class InstallStepError extends CodedError {
  readonly code = 'KX_INSTALL_STEP';
}
