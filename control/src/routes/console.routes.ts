import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';
import { errorResponses } from '../http/schemas.js';

/** Built by `npm install` / `npm run build` (control/scripts/build-console.mjs); the same path from src/ and dist/. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../dist/console/', import.meta.url));

/**
 * DESIGN §9: `script-src 'self'` and nothing inline; the console talks only to
 * this server (`connect-src 'self'`), loads nothing from elsewhere, and may not be framed.
 */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const isFile = (p: string): boolean => fs.statSync(p, { throwIfNoEntry: false })?.isFile() === true;

const FILE = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/i;

/** The web console's static files at /console/ (`/` redirects there). Public: the files hold no data; the API checks every call. */
export async function consoleRoutes(app: FastifyInstance): Promise<void> {
  await app.register(fastifyStatic, { root: CONSOLE_DIR, serve: false, cacheControl: false });
  const built = (): boolean => fs.existsSync(`${CONSOLE_DIR}index.html`);
  const schema = (summary: string) => ({ summary, hide: true, response: { 200: { description: 'a static file', type: 'string' }, ...errorResponses } });

  app.get('/', { config: { access: 'public' }, schema: { summary: 'Redirects to the web console', hide: true, response: { 302: { type: 'null' }, ...errorResponses } } }, async (_req, reply) =>
    reply.redirect('/console/', 302),
  );

  app.get('/console', { config: { access: 'public' }, schema: { summary: 'Redirects to /console/', hide: true, response: { 302: { type: 'null' }, ...errorResponses } } }, async (_req, reply) =>
    reply.redirect('/console/', 302),
  );

  app.get('/console/', { config: { access: 'public' }, schema: schema('The web console') }, async (_req, reply) => {
    if (!built()) throw new Errors.UNAVAILABLE('the console is not built: run npm run build');
    return reply.header('content-security-policy', CONSOLE_CSP).header('cache-control', 'no-cache').sendFile('index.html');
  });

  app.get<{ Params: { '*': string } }>('/console/*', { config: { access: 'public' }, schema: schema("The web console's files") }, async (req, reply) => {
    const file = req.params['*'];
    if (!FILE.test(file) || file.split('/').includes('..') || !isFile(`${CONSOLE_DIR}${file}`)) throw new Errors.NOT_FOUND(`console file ${file}`);
    return reply.header('content-security-policy', CONSOLE_CSP).header('cache-control', 'no-cache').sendFile(file);
  });
}
