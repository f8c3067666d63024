import { api } from '../lib/api.js';
import { html, useState } from '../lib/html.js';

/** DESIGN §9: one input labelled "API key"; the key goes to the server once and is never stored. */
export function SignIn({ message, onSignedIn }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const s = await api('POST', '/api/v1/session', { apiKey: key.trim() }, { quiet401: true });
      setKey('');
      const me = await api('GET', '/api/v1/session');
      onSignedIn({ ...s, ...me });
    } catch (err) {
      setError(err.status === 401 ? 'That API key is unknown or revoked.' : err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <main class="signin">
      <h1>Kernex console</h1>
      ${message && html`<p class="notice" role="status">${message}</p>`}
      <form onSubmit=${submit}>
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autocomplete="off" required value=${key} onInput=${(e) => setKey(e.currentTarget.value)} />
        <button type="submit" disabled=${busy}>Sign in</button>
        ${error && html`<p class="error" role="alert">${error}</p>`}
      </form>
      <p class="hint">The key is exchanged for a session cookie; the browser does not keep it.</p>
    </main>
  `;
}
