import { api, get, withQuery } from '../lib/api.js';
import { when } from '../lib/format.js';
import { html, useEffect, useState } from '../lib/html.js';

/** A secret shown once, with a copy button. */
export function ShownOnce({ label, secret }) {
  const [copied, setCopied] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('Copied.');
    } catch {
      setCopied('Copy failed: select the text and copy it.');
    }
  };
  return html`<div class="once" role="status">
    <p>${label} (shown once, keep it now):</p>
    <code data-testid="secret" class="wrap">${secret}</code>
    <button type="button" onClick=${copy}>Copy</button> <span>${copied}</span>
  </div>`;
}

/** Enrollment tokens (admin): create (shown once), list, revoke. */
export function TokensScreen() {
  const [page, setPage] = useState({ items: [] });
  const [form, setForm] = useState({ uses: 10, expiresInS: 86400, tags: '' });
  const [made, setMade] = useState();
  const [error, setError] = useState('');
  const load = () => get(withQuery('/api/v1/enrollment-tokens', { limit: 100 })).then(setPage, (e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const create = async (e) => {
    e.preventDefault();
    setError('');
    try {
      const tags = form.tags.split(',').map((t) => t.trim()).filter(Boolean);
      setMade(await api('POST', '/api/v1/enrollment-tokens', { uses: Number(form.uses), expiresInS: Number(form.expiresInS), ...(tags.length ? { tags } : {}) }));
      await load();
    } catch (err) {
      setError(err.message);
    }
  };
  const revoke = async (t) => {
    if (!confirm(`Revoke token ${t.tokenPrefix}…? Devices can no longer enroll with it.`)) return;
    try {
      await api('DELETE', `/api/v1/enrollment-tokens/${t.id}`);
      await load();
    } catch (err) {
      setError(err.message);
    }
  };
  return html`
    <main>
      <h1>Enrollment tokens</h1>
      <form class="row" onSubmit=${create}>
        <label>Uses <input type="number" min="1" value=${form.uses} onInput=${set('uses')} /></label>
        <label>Expires in (s) <input type="number" min="1" value=${form.expiresInS} onInput=${set('expiresInS')} /></label>
        <label>Tags <input value=${form.tags} onInput=${set('tags')} /></label>
        <button type="submit">Create token</button>
      </form>
      ${made && html`<${ShownOnce} label="Enrollment token" secret=${made.token} />`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <table>
        <thead><tr><th scope="col">Token</th><th scope="col">Uses left</th><th scope="col">Tags</th><th scope="col">Expires</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
        <tbody>${page.items.map(
          (t) => html`<tr>
            <td class="mono">${t.tokenPrefix}…</td><td>${t.usesLeft}/${t.uses}</td><td>${t.tags.join(', ')}</td><td>${when(t.expiresAt)}</td>
            <td>${t.revokedAt ? 'revoked' : 'active'}</td>
            <td>${!t.revokedAt && html`<button type="button" class="danger" onClick=${() => revoke(t)}>Revoke</button>`}</td>
          </tr>`,
        )}</tbody>
      </table>
    </main>
  `;
}
