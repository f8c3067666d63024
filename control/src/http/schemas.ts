/** JSON schemas shared by routes (fastify validates with them and @fastify/swagger documents them). */

/** The contract's error body (DESIGN §6). */
export const errorBodySchema = {
  type: 'object',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string', description: 'stable error code, see the README error table' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

/** Error responses every route may answer; spread into `schema.response`. */
export const errorResponses = {
  '4xx': { description: 'refused: bad input, credentials, role, missing resource, rate limit', ...errorBodySchema },
  '5xx': { description: 'server failure', ...errorBodySchema },
} as const;

/** `:id` path parameter that is a UUID. */
export const uuidParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', format: 'uuid' } },
} as const;

export const dateTime = { type: 'string', format: 'date-time' } as const;
export const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const;
