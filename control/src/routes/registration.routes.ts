import { registrationSchema, type RegistrationRequest } from '@kernex/shared';
import type { FastifyInstance } from 'fastify';
import type { RegistrationService } from '../services/registration.service.js';

const { $id: _id, ...body } = registrationSchema;

/** Registration needs no key; http/rate-limit.plugin.ts limits it per address (KERNEX_REGISTER_RATE_LIMIT_PER_MIN). */
const config = { access: 'public' } as const;

const answer = {
  type: 'object',
  required: ['deviceId', 'status', 'mqtt', 'serverPublicKey', 'serverTime'],
  properties: {
    deviceId: { type: 'string' },
    status: { type: 'string' },
    mqtt: { type: 'array', items: { type: 'string' } },
    serverPublicKey: { type: 'string' },
    serverTime: { type: 'string', format: 'date-time' },
  },
} as const;

/** `POST /api/v1/devices/register` (DESIGN §2): 201 new, 200 known key, 400 malformed, 401 bad proof, 403 refused key. */
export async function registrationRoutes(app: FastifyInstance, opts: { registration: RegistrationService }): Promise<void> {
  app.post<{ Body: RegistrationRequest }>(
    '/api/v1/devices/register',
    {
      config,
      schema: { summary: 'Register a device key (proof of possession); 201 new, 200 known key', body, response: { 200: answer, 201: answer } },
    },
    async (req, reply) => {
      const { created, response } = await opts.registration.register(req.body, req.headers.host);
      req.auditTarget = response.deviceId;
      return reply.code(created ? 201 : 200).send(response);
    },
  );
}
