/** Admin roles of DESIGN §6, weakest first. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Who a route lets in, declared on every route as `config: { access }`:
 * `public` (no credentials), a minimum admin role, or `device` (a device JWT
 * with `aud` kernex-http; see DESIGN §2), optionally together with a role.
 */
export type Access = 'public' | Role | { role?: Role; device: true };

/** True when `have` is at least `need` (admin ⊇ operator ⊇ viewer). */
export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}
