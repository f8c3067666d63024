import { api, get, withQuery } from '../lib/api.js';
import { when } from '../lib/format.js';
import { html, useEffect, useState } from '../lib/html.js';
import { ShownOnce } from './tokens.js';

/** API keys (admin): create (shown once), list, revoke. */
export function KeysScreen() {
  const [page, setPage] = useState({ items: [] });
  const [form, setForm] = useState({ name: '', role: 'viewer' });
  const [made, setMade] = useState();
  const [error, setError] = useState('');
  const load = () => get(withQuery('/api/v1/api-keys', { limit: 100 })).then(setPage, (e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);
  const create = async (e) => {
    e.preventDefault();
    setError('');
    try {
      setMade(await api('POST', '/api/v1/api-keys', form));
      setForm({ name: '', role: 'viewer' });
      await load();
    } catch (err) {
      setError(err.message);
    }
  };
  const revoke = async (k) => {
    if (!confirm(`Revoke key ${k.name}? Its sessions end at once.`)) return;
    try {
      await api('DELETE', `/api/v1/api-keys/${k.id}`);
      await load();
    } catch (err) {
      setError(err.message);
    }
  };
  return html`
    <main>
      <h1>API keys</h1>
      <form class="row" onSubmit=${create}>
        <label>Name <input required value=${form.name} onInput=${(e) => setForm({ ...form, name: e.currentTarget.value })} /></label>
        <label>Role
          <select value=${form.role} onChange=${(e) => setForm({ ...form, role: e.currentTarget.value })}>
            <option>viewer</option><option>operator</option><option>admin</option>
          </select>
        </label>
        <button type="submit">Create key</button>
      </form>
      ${made && html`<${ShownOnce} label=${`API key ${made.name}`} secret=${made.key} />`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <table>
        <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Prefix</th><th scope="col">Last used</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
        <tbody>${page.items.map(
          (k) => html`<tr>
            <td>${k.name}</td><td>${k.role}</td><td class="mono">${k.keyPrefix}…</td><td>${when(k.lastUsedAt)}</td>
            <td>${k.revokedAt ? 'revoked' : 'active'}</td>
            <td>${!k.revokedAt && html`<button type="button" class="danger" onClick=${() => revoke(k)}>Revoke</button>`}</td>
          </tr>`,
        )}</tbody>
      </table>
    </main>
  `;
}
