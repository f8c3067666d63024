import createError from '@fastify/error';

/**
 * Every error of the HTTP API, declared once with a stable code (STYLE: errors).
 * Services throw these; the error handler in app.ts turns them into the
 * contract's `{statusCode, code, error, message}` (DESIGN §6). Each code is
 * listed in the README's error table, and a test checks that.
 */
export const Errors = {
  NOT_FOUND: createError('KX_NOT_FOUND', '%s not found', 404),
  ROUTE_NOT_FOUND: createError('KX_ROUTE_NOT_FOUND', 'no route %s %s', 404),
  VALIDATION: createError('KX_VALIDATION', '%s', 400),
  UNAUTHORIZED: createError('KX_UNAUTHORIZED', '%s', 401),
  FORBIDDEN: createError('KX_FORBIDDEN', '%s', 403),
  CSRF: createError('KX_CSRF', '%s', 403),
  CONFLICT: createError('KX_CONFLICT', '%s', 409),
  PAYLOAD_TOO_LARGE: createError('KX_PAYLOAD_TOO_LARGE', 'request body is larger than %s bytes', 413),
  BUNDLE_INVALID: createError('KX_BUNDLE_INVALID', '%s', 400),
  BUNDLE_UNSAFE_ENTRY: createError('KX_BUNDLE_UNSAFE_ENTRY', "unsafe entry '%s': %s", 400),
  RANGE_NOT_SATISFIABLE: createError('KX_RANGE_NOT_SATISFIABLE', 'range not satisfiable: the blob has %s bytes', 416),
  UNSUPPORTED_MEDIA_TYPE: createError('KX_UNSUPPORTED_MEDIA_TYPE', 'content type %s is not accepted here: send %s', 415),
  BAD_PROOF: createError('KX_BAD_PROOF', 'registration proof refused: %s', 401),
  ENROLLMENT_TOKEN_INVALID: createError('KX_ENROLLMENT_TOKEN_INVALID', 'enrollment token is unknown, expired, used up or revoked', 401),
  DEVICE_REFUSED: createError('KX_DEVICE_REFUSED', 'device %s is %s', 403),
  RATE_LIMITED: createError('KX_RATE_LIMITED', 'too many requests, retry in %s', 429),
  UNAVAILABLE: createError('KX_UNAVAILABLE', '%s', 503),
  INTERNAL: createError('KX_INTERNAL', 'internal server error', 500),
} as const;

/** A condition that stops the server from starting; its message is the one line the operator sees. */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/**
 * A batched write stopped because the database failed for another reason
 * than a row it refused (it is away): `unwritten` lists, in order, what was
 * not written, to be kept for the next attempt.
 */
export class WriteInterrupted<T> extends Error {
  constructor(
    readonly unwritten: T[],
    override readonly cause: unknown,
  ) {
    super((cause as Error)?.message ?? String(cause));
    this.name = 'WriteInterrupted';
  }
}
