import type { FastifyRequest } from 'fastify';
import { Errors } from '../errors.js';
import { SESSION_COOKIE } from './sessions.service.js';

/** The header the console sends on every change; a cross-site form or image cannot set it. */
export const CSRF_HEADER = 'x-kernex-csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The session cookie's value, if the request carries one. */
export function sessionCookie(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/**
 * CSRF defence for cookie-authenticated changes (DESIGN §9), on top of
 * SameSite=Strict: the request must carry {@link CSRF_HEADER} (which forces a
 * CORS preflight cross-origin, and CORS allows no such header), and an
 * `Origin`, when the browser sends one, must be this server's own.
 */
export function checkCsrf(req: FastifyRequest): void {
  if (SAFE_METHODS.has(req.method)) return;
  if (req.headers[CSRF_HEADER] !== '1') throw new Errors.CSRF(`a change made with the session cookie needs the header ${CSRF_HEADER}: 1`);
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `${req.protocol}://${req.host}`) {
    throw new Errors.CSRF(`origin ${origin} is not this server`);
  }
}

/** The Set-Cookie value of a new session (Secure when served over HTTPS). */
export function sessionSetCookie(token: string, expiresAt: Date, secure: boolean): string {
  const maxAge = Math.max(0, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`;
}

/** The Set-Cookie value that makes the browser drop the cookie. */
export function clearSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}
