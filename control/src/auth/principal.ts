import type { Role } from './roles.js';

/**
 * Who made a request: an operator's API key with its role (`session` when it came with a
 * console cookie instead of the key), or a device by its id (DESIGN §2, §6, §9).
 * Its own file so services can name the caller without importing the HTTP auth plugin.
 */
export type Principal =
  | { kind: 'apiKey'; keyId: string; name: string; role: Role; session?: true }
  | { kind: 'device'; deviceId: string };
