/**
 * What a user is told a value must look like when it fails a schema `pattern` or
 * `format`: words and an example, never the regular expression (semver.org's is
 * 300 characters). Every pattern a schema uses, here or in a route, is listed, and
 * a test walks the server's route schemas to keep it so.
 */

/** semver.org's own expression for a valid semantic version (2.0.0). */
export const SEMVER_PATTERN =
  '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-((?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\\.(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$';

/** A device id: the first 24 lowercase hex characters of SHA-256 over the key (DESIGN §2). */
export const DEVICE_ID_PATTERN = '^[0-9a-f]{24}$';

/** A SHA-256 digest in lowercase hex. */
export const SHA256_PATTERN = '^[0-9a-f]{64}$';

/** A bundle name in a manifest (DESIGN §4). */
export const BUNDLE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

/** A path inside a bundle: relative, no `..`, no backslash or NUL (the archive rules check it again). */
export const BUNDLE_PATH_PATTERN = '^(?!/)(?!.*(^|/)\\.\\.(/|$))[^\\\\\\u0000]+$';

const EXPECTED_BY_PATTERN: Readonly<Record<string, string>> = {
  [SEMVER_PATTERN]: 'a semver version such as 1.2.0',
  [DEVICE_ID_PATTERN]: 'a device id: 24 lowercase hex characters such as 3f2a9c01d4e5b6a7c8d9e0f1',
  [SHA256_PATTERN]: 'a SHA-256 digest: 64 lowercase hex characters',
  [BUNDLE_NAME_PATTERN]: 'a bundle name such as web-app: letters, digits, ".", "_" and "-", starting with a letter or digit, at most 128 characters',
  [BUNDLE_PATH_PATTERN]: 'a relative path inside the bundle such as install.sh, without ".." or "\\"',
};

const EXPECTED_BY_FORMAT: Readonly<Record<string, string>> = {
  uuid: 'a UUID such as 2861e1f1-14b1-421d-9fb5-8828877cb4f1',
  'date-time': 'an ISO 8601 date and time such as 2026-01-31T12:00:00Z',
  date: 'a date such as 2026-01-31',
  uri: 'a URL such as https://kernex.example.com',
  email: 'an e-mail address',
};

/** The words for a schema `pattern`, or undefined when it has none (a test keeps that from happening). */
export function expectedForPattern(pattern: string): string | undefined {
  return EXPECTED_BY_PATTERN[pattern];
}

/** The words for a schema `format`, or undefined when it has none. */
export function expectedForFormat(format: string): string | undefined {
  return EXPECTED_BY_FORMAT[format];
}

/** The part of an ajv error this module reads. */
export interface SchemaErrorLike {
  keyword: string;
  params?: Record<string, unknown>;
  message?: string;
}

/**
 * The end of a one-line validation message ("must be a semver version such as 1.2.0"):
 * ajv's own message, except for `pattern` and `format`, whose ajv messages quote the
 * expression; those say what was expected, in words.
 */
export function schemaErrorText(e: SchemaErrorLike): string {
  if (e.keyword === 'pattern') {
    return `must be ${expectedForPattern(String(e.params?.pattern)) ?? 'in the expected format'}`;
  }
  if (e.keyword === 'format') {
    return `must be ${expectedForFormat(String(e.params?.format)) ?? `a valid ${String(e.params?.format)}`}`;
  }
  return e.message ?? 'is invalid';
}
