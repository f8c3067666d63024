/**
 * Every error the agent and the simulator throw, declared once, each with a stable `code`
 * (STYLE: errors; the README's "Agent and library errors" table lists them). Causes are
 * kept (`{ cause }`).
 */

/** Every bad value, one line each, naming the flag or variable. */
export class AgentConfigError extends Error {
  readonly code = 'KX_AGENT_CONFIG';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'AgentConfigError';
  }
}

/** Why a registration did not succeed; `retry` says whether trying again later can help. */
export class RegistrationError extends Error {
  readonly code = 'KX_REGISTRATION';
  constructor(
    readonly kind: 'unreachable' | 'refused' | 'bad_proof' | 'bad_token' | 'invalid' | 'server',
    message: string,
    readonly retry: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RegistrationError';
  }
}

/** A download that ended for a reason retrying will not fix (HTTP 4xx, too large, cancelled). */
export class DownloadError extends Error {
  readonly code = 'KX_DOWNLOAD';
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DownloadError';
  }
}

/** A downloaded blob that is not the bundle the server signed. */
export class VerifyError extends Error {
  readonly code = 'KX_VERIFY';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VerifyError';
  }
}

/** A failure that ends the simulation before any device starts; its message is one line for the user. */
export class SimulationError extends Error {
  readonly code = 'KX_SIMULATION';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SimulationError';
  }
}

/** A bundle whose archive unpacked but whose manifest is unreadable or invalid (DESIGN §4). */
export class BundleInvalidError extends Error {
  readonly code = 'KX_BUNDLE_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BundleInvalidError';
  }
}

/** An install step that failed; its message is the execution event's `error` text. */
export class InstallStepError extends Error {
  readonly code = 'KX_INSTALL_STEP';
  constructor(message?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InstallStepError';
  }
}
