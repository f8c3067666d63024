import type { DeviceStatus } from '@kernex/shared';
import type { FastifyInstance } from 'fastify';
import type { DevicesService } from '../services/devices.service.js';
import { pageQueryProperties, pageSchema } from '../paging.js';
import { deviceIdParams, deviceSchema, tagsSchema } from './devices.schemas.js';

interface IdParams {
  id: string;
}

/** The device resource (DESIGN §2): reads for viewers (and a device for itself), changes for operators. */
export async function devicesRoutes(app: FastifyInstance, opts: { devices: DevicesService }): Promise<void> {
  const { devices } = opts;

  app.get<{ Querystring: { status?: DeviceStatus; online?: boolean; tag?: string; q?: string; limit: number; cursor?: string } }>(
    '/api/v1/devices',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'List devices in registration order, filtered by status, online, tag and q (a prefix of the id or a part of the name)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            status: deviceSchema.properties.status,
            online: { type: 'boolean' },
            tag: { type: 'string', minLength: 1, maxLength: 64 },
            q: { type: 'string', minLength: 1, maxLength: 128, description: 'a prefix of the id or a part of the name (case-insensitive)' },
            ...pageQueryProperties,
          },
        },
        response: { 200: pageSchema(deviceSchema) },
      },
    },
    async (req) => {
      const { status, online, tag, q, limit, cursor } = req.query;
      return devices.list({ status, online, tag, q }, limit, cursor);
    },
  );

  app.get<{ Params: IdParams }>(
    '/api/v1/devices/:id',
    {
      config: { access: { role: 'viewer', device: true } },
      schema: { summary: 'A device (a device token may read only its own)', params: deviceIdParams, response: { 200: deviceSchema } },
    },
    async (req) => devices.get(req.params.id, req.principal),
  );

  app.patch<{ Params: IdParams; Body: { name?: string; tags?: string[] } }>(
    '/api/v1/devices/:id',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'Rename or re-tag a device',
        params: deviceIdParams,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { name: { type: 'string', minLength: 1, maxLength: 128 }, tags: tagsSchema },
        },
        response: { 200: deviceSchema },
      },
    },
    async (req) => devices.update(req.params.id, req.body),
  );

  for (const action of ['accept', 'reject'] as const) {
    app.post<{ Params: IdParams }>(
      `/api/v1/devices/:id/${action}`,
      {
        config: { access: 'operator' },
        schema: { summary: `${action === 'accept' ? 'Accept' : 'Reject'} a device`, params: deviceIdParams, response: { 200: deviceSchema } },
      },
      async (req) => devices.decide(req.params.id, action),
    );
  }

  app.delete<{ Params: IdParams }>(
    '/api/v1/devices/:id',
    {
      config: { access: 'operator' },
      schema: { summary: 'Decommission a device for good; ends its MQTT session', params: deviceIdParams, response: { 200: deviceSchema } },
    },
    async (req) => devices.decide(req.params.id, 'decommission'),
  );
}
