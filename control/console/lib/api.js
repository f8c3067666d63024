// The admin API, as the CLI uses it, with the session cookie instead of a key.
// Every change carries x-kernex-csrf (DESIGN §9); a 401 anywhere means the
// session ended (signed out elsewhere, expired, key revoked): back to sign-in.

/** An answer the API refused, with the contract's error body. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
  }
}

const listeners = new Set();
/** Called with a message when the API answers 401 to a signed-in console. */
export function onSignedOut(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
export function signedOut(message) {
  for (const fn of listeners) fn(message);
}

export async function api(method, path, body, { quiet401 = false } = {}) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-kernex-csrf'] = '1';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (res.status === 401 && !quiet401) signedOut('Your session has ended: it expired, you signed out elsewhere, or its key was revoked. Sign in again.');
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path) => api('GET', path);

/** Builds `path?k=v&...`, skipping empty values; arrays repeat the key. */
export function withQuery(path, query) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) p.append(k, String(one));
  }
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * Uploads a file as the raw body with XMLHttpRequest, whose upload events give
 * the progress bar (fetch has none). `onProgress(sent, total)`.
 */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('content-type', 'application/gzip');
    xhr.setRequestHeader('x-kernex-csrf', '1');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onerror = () => reject(new ApiError(0, { message: 'the upload failed: connection lost' }));
    xhr.onload = () => {
      let data;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : undefined;
      } catch {
        data = undefined;
      }
      if (xhr.status === 401) signedOut('Your session has ended. Sign in again.');
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    };
    xhr.send(file);
  });
}

export const ROLES = ['viewer', 'operator', 'admin'];
/** True when `role` may do what needs `need` (admin ⊇ operator ⊇ viewer). */
export const can = (role, need) => ROLES.indexOf(role) >= ROLES.indexOf(need);
