import type { FastifyInstance, FastifySchema, HTTPMethods } from 'fastify';
import fp from 'fastify-plugin';
import type { Access } from '../auth/roles.js';

/** One registered route, as the route-table tests and the OpenAPI document see it. */
export interface RouteEntry {
  method: HTTPMethods;
  url: string;
  access: Access | undefined;
  schema: FastifySchema | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered after the route table (register it before any route). */
    routeTable: RouteEntry[];
  }
}

/** Collects every route, so tests can check that each has an access rule and schemas. */
export const routeTablePlugin = fp(async function routeTablePlugin(app: FastifyInstance) {
  const table: RouteEntry[] = [];
  app.decorate('routeTable', table);
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      table.push({ method, url: route.url, access: route.config?.access, schema: route.schema });
    }
  });
});
