import { DEVICE_STATUSES } from '@kernex/shared';

/** JSON Schemas of the device routes (OpenAPI at /docs picks them up). */

export const deviceIdParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[0-9a-f]{24}$' } },
} as const;

const nullableString = { anyOf: [{ type: 'string' }, { type: 'null' }] } as const;

export const deviceSchema = {
  type: 'object',
  required: ['id', 'name', 'status', 'online', 'lastSeenAt', 'tags', 'hardware', 'bundles', 'telemetry', 'telemetryAt', 'createdAt'],
  properties: {
    id: { type: 'string' },
    name: nullableString,
    status: { type: 'string', enum: [...DEVICE_STATUSES] },
    online: { type: 'boolean' },
    lastSeenAt: { anyOf: [{ type: 'string', format: 'date-time' }, { type: 'null' }] },
    tags: { type: 'array', items: { type: 'string' } },
    hardware: { anyOf: [{ type: 'object', additionalProperties: true }, { type: 'null' }] },
    bundles: { type: 'object', additionalProperties: { type: 'string' } },
    telemetry: { anyOf: [{ type: 'object', additionalProperties: true }, { type: 'null' }] },
    telemetryAt: { anyOf: [{ type: 'string', format: 'date-time' }, { type: 'null' }] },
    createdAt: { type: 'string', format: 'date-time' },
  },
} as const;

export const tagsSchema = { type: 'array', maxItems: 32, items: { type: 'string', minLength: 1, maxLength: 64 } } as const;
