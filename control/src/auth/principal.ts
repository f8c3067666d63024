import type { Role } from './roles.js';

/**
 * Who made a request: an operator's API key with its role, or a device by its id (DESIGN §2, §6).
 * Its own file so services can name the caller without importing the HTTP auth plugin.
 */
export type Principal =
  | { kind: 'apiKey'; keyId: string; name: string; role: Role }
  | { kind: 'device'; deviceId: string };
