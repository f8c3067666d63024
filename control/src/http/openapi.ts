import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import type { Access } from '../auth/roles.js';
import { errorResponses } from './schemas.js';

/** What the OpenAPI document says about who may call a route (from `config.access`). */
function accessNote(access: Access | undefined): { security?: Array<Record<string, string[]>>; note?: string } {
  if (access === undefined || access === 'public') return { security: [] };
  if (typeof access === 'string') return { security: [{ apiKey: [] }], note: `Needs an API key with the ${access} role or higher.` };
  const role = access.role ? ` or an API key with the ${access.role} role or higher` : '';
  return { security: [{ deviceToken: [] }, ...(access.role ? [{ apiKey: [] }] : [])], note: `Needs a device token${role}.` };
}

const swaggerOptions: FastifyDynamicSwaggerOptions = {
  openapi: {
    openapi: '3.0.3',
    info: {
      title: 'Kernex admin API',
      description: 'Push-based fleet manager. Errors are `{statusCode, code, error, message}`; list endpoints page with `limit` and `cursor` and answer `{items, nextCursor}`.',
      version: '1',
    },
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'an admin API key (kx_...)' },
        deviceToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a device JWT, aud kernex-http' },
      },
    },
  },
  transform: ({ schema, url, route }) => {
    const { security, note } = accessNote(route.config?.access);
    const description = [schema?.description, note].filter(Boolean).join(' ');
    // Every route answers errors in the contract's shape (app.ts); document that even where a route did not say so.
    const response = schema?.response ? { ...errorResponses, ...(schema.response as object) } : undefined;
    return { schema: { ...schema, security, ...(response ? { response } : {}), ...(description ? { description } : {}) } as typeof schema, url };
  },
};

/** Generates the OpenAPI document from the route schemas; register before any route. */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, swaggerOptions);
}

/** The UI at `/docs`, the JSON at `/docs/json` (DESIGN §6; the auth plugin keeps `/docs` public). */
export async function registerDocsUi(app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // As for every other route (app.ts): plain-HTTP servers in a LAN must still load the UI's assets.
    transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
  });
}
