import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { EXECUTION_STATES } from '../protocol.js';
import type { BundleManifest, Command, DeviceStatusMessage, ExecutionEvent, RegistrationRequest, Telemetry } from '../protocol.js';
import { BUNDLE_NAME_PATTERN, BUNDLE_PATH_PATTERN, schemaErrorText, SEMVER_PATTERN, SHA256_PATTERN } from './expectations.js';

export * from './expectations.js';

/** JSON Schemas of every MQTT payload and of the registration body (DESIGN §2, §3). */

const id = { type: 'string', minLength: 1, maxLength: 128 } as const;
const ts = { oneOf: [{ type: 'string', maxLength: 64 }, { type: 'number' }] } as const;

/** Body of `POST /api/v1/devices/register` (DESIGN §2); bounded so a hostile body costs little to refuse. */
export const registrationSchema = {
  $id: 'kernex/registration',
  type: 'object',
  required: ['publicKey', 'proof'],
  additionalProperties: false,
  properties: {
    publicKey: { type: 'string', minLength: 1, maxLength: 8192 },
    proof: { type: 'string', minLength: 1, maxLength: 4096 },
    enrollmentToken: { type: 'string', minLength: 1, maxLength: 256 },
    name: { type: 'string', minLength: 1, maxLength: 128 },
    hardware: { type: 'object' },
    tags: { type: 'array', maxItems: 32, items: { type: 'string', minLength: 1, maxLength: 64 } },
  },
} as const;

/** An execution event on `kx/{id}/events` (DESIGN §3); unknown fields refused, so a typo is not silently dropped. */
export const eventSchema = {
  $id: 'kernex/event',
  type: 'object',
  required: ['executionId', 'state', 'ts'],
  additionalProperties: false,
  properties: {
    executionId: id,
    state: { enum: [...EXECUTION_STATES] },
    progress: { type: 'number', minimum: 0, maximum: 100 },
    error: { type: 'string', maxLength: 2048 },
    ts,
  },
} as const;

const metric = { oneOf: [{ type: 'number' }, { type: 'string', maxLength: 256 }, { type: 'boolean' }] } as const;
const pair = { type: 'array', minItems: 2, maxItems: 2, items: { type: 'number', minimum: 0 } } as const;

/** A telemetry message on `kx/{id}/telemetry` (DESIGN §3); bounded per metric so one device cannot grow the table without limit. */
export const telemetrySchema = {
  $id: 'kernex/telemetry',
  type: 'object',
  maxProperties: 64,
  properties: {
    ts: { type: 'number' },
    cpu: { type: 'number', minimum: 0, maximum: 100 },
    mem: pair,
    disk: pair,
    load: { type: 'array', minItems: 3, maxItems: 3, items: { type: 'number', minimum: 0 } },
    up: { type: 'number', minimum: 0 },
    v: { type: 'string', maxLength: 64 },
    b: { type: 'object', maxProperties: 64, additionalProperties: { type: 'string', maxLength: 64 } },
  },
  additionalProperties: metric,
} as const;

/** A status message on `kx/{id}/status` (DESIGN §3); presence itself comes from the broker, this is only what the device says. */
export const statusSchema = {
  $id: 'kernex/status',
  type: 'object',
  required: ['state'],
  maxProperties: 16,
  properties: { state: { enum: ['online', 'offline'] } },
} as const;

const bundleRef = {
  type: 'object',
  required: ['id', 'name', 'version', 'sha256', 'size', 'url', 'signature'],
  properties: {
    id,
    name: id,
    version: { type: 'string', minLength: 1, maxLength: 64 },
    sha256: { type: 'string', pattern: SHA256_PATTERN },
    size: { type: 'integer', minimum: 0 },
    url: { type: 'string', minLength: 1, maxLength: 2048 },
    signature: { type: 'string', minLength: 1, maxLength: 2048 },
  },
} as const;

/** A command on `kx/{id}/cmd` (DESIGN §3): the agent checks what it is sent as strictly as the server checks what devices send. */
export const commandSchema = {
  $id: 'kernex/command',
  type: 'object',
  required: ['id', 'type', 'executionId', 'issuedAt'],
  properties: {
    id,
    type: { enum: ['deploy', 'cancel', 'rollback'] },
    executionId: id,
    issuedAt: { type: 'string' },
    bundle: bundleRef,
    timeoutS: { type: 'integer', minimum: 1 },
    name: id,
  },
  allOf: [
    { if: { properties: { type: { const: 'deploy' } } }, then: { required: ['bundle', 'timeoutS'] } },
    { if: { properties: { type: { const: 'rollback' } } }, then: { required: ['name'] } },
  ],
} as const;

/** A path inside a bundle: relative, no `..`, no backslash (the archive rules check it again). */
const bundlePath = { type: 'string', minLength: 1, maxLength: 1024, pattern: BUNDLE_PATH_PATTERN } as const;

/** `manifest.json` at the root of a bundle (DESIGN §4). Unknown fields are kept, for later versions. */
export const manifestSchema = {
  $id: 'kernex/manifest',
  type: 'object',
  required: ['name', 'version', 'install'],
  properties: {
    name: { type: 'string', pattern: BUNDLE_NAME_PATTERN },
    version: { type: 'string', maxLength: 64, pattern: SEMVER_PATTERN },
    install: bundlePath,
    healthCheck: {
      type: 'object',
      required: ['script'],
      additionalProperties: false,
      properties: {
        script: bundlePath,
        timeoutS: { type: 'integer', minimum: 1, maximum: 3600 },
      },
    },
    description: { type: 'string', maxLength: 4096 },
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: true, strictTypes: false, strictRequired: false });

/** A compiled validator that also says, in one line, what is wrong. */
export interface Validator<T> {
  (data: unknown): data is T;
  /** One line naming the first problem of the last failed call, e.g. "/state must be equal to one of the allowed values". */
  lastError(): string;
}

function compile<T>(schema: object): Validator<T> {
  const fn: ValidateFunction = ajv.compile(schema);
  const v = ((data: unknown) => fn(data)) as Validator<T>;
  v.lastError = () => describe(fn.errors);
  return v;
}

function describe(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'invalid';
  const where = e.instancePath || '(root)';
  return `${where} ${schemaErrorText(e)}`;
}

// Compiled once, at import (STYLE: ajv compiled once): validating is then cheap per packet.
/** Checks a registration body; `lastError()` says why it was refused, naming the field. */
export const validateRegistration = compile<RegistrationRequest>(registrationSchema);
/** Checks an execution event before it is stored; an invalid one is dropped and counted, never stored. */
export const validateEvent = compile<ExecutionEvent>(eventSchema);
/** Checks a telemetry message before it is stored. */
export const validateTelemetry = compile<Telemetry>(telemetrySchema);
/** Checks a status message before it is acted on. */
export const validateStatus = compile<DeviceStatusMessage>(statusSchema);
/** Checks a command: the agent refuses a garbled one instead of running it. */
export const validateCommand = compile<Command>(commandSchema);
/** Checks a bundle's `manifest.json`, on upload (server) and after unpacking (agent). */
export const validateManifest = compile<BundleManifest>(manifestSchema);
