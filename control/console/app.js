// The Kernex web console (DESIGN §9): a small Preact app on the admin API.
import { api, can, onSignedOut } from './lib/api.js';
import { html, render, useEffect, useState } from './lib/html.js';
import { startLive, stopLive } from './lib/live.js';
import { AuditScreen } from './screens/audit.js';
import { BundlesScreen } from './screens/bundles.js';
import { DeploymentScreen } from './screens/deployment.js';
import { DeploymentsScreen } from './screens/deployments.js';
import { DeviceScreen } from './screens/device.js';
import { DevicesScreen } from './screens/devices.js';
import { KeysScreen } from './screens/keys.js';
import { OverviewScreen } from './screens/overview.js';
import { SignIn } from './screens/signin.js';
import { TokensScreen } from './screens/tokens.js';

const NAV = [
  ['#/', 'Overview', 'viewer'],
  ['#/devices', 'Devices', 'viewer'],
  ['#/bundles', 'Bundles', 'viewer'],
  ['#/deployments', 'Deployments', 'viewer'],
  ['#/tokens', 'Enrollment tokens', 'admin'],
  ['#/keys', 'API keys', 'admin'],
  ['#/audit', 'Audit log', 'admin'],
];

function route(hash) {
  const [path, query = ''] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  return { parts, query: new URLSearchParams(query) };
}

function useHash() {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Screen({ session, hash }) {
  const { parts, query } = route(hash);
  const role = session.role;
  const [first, id] = parts;
  if (!first) return html`<${OverviewScreen} role=${role} />`;
  if (first === 'devices' && id) return html`<${DeviceScreen} key=${id} id=${id} role=${role} />`;
  if (first === 'devices') return html`<${DevicesScreen} role=${role} query=${query} />`;
  if (first === 'bundles') return html`<${BundlesScreen} role=${role} />`;
  if (first === 'deployments' && id) return html`<${DeploymentScreen} key=${id} id=${id} role=${role} />`;
  if (first === 'deployments') return html`<${DeploymentsScreen} role=${role} />`;
  if (first === 'tokens' && can(role, 'admin')) return html`<${TokensScreen} />`;
  if (first === 'keys' && can(role, 'admin')) return html`<${KeysScreen} />`;
  if (first === 'audit' && can(role, 'admin')) return html`<${AuditScreen} />`;
  return html`<main><h1>Not found</h1><p>There is no such screen.</p></main>`;
}

function App() {
  const [session, setSession] = useState(undefined); // undefined: checking; null: signed out
  const [message, setMessage] = useState('');
  const hash = useHash();

  useEffect(() => {
    api('GET', '/api/v1/session', undefined, { quiet401: true }).then(
      (s) => setSession(s),
      () => setSession(null),
    );
    return onSignedOut((msg) => {
      stopLive();
      setMessage(msg);
      setSession(null);
    });
  }, []);

  useEffect(() => {
    if (session) startLive();
  }, [session]);

  if (session === undefined) return html`<p class="loading">Loading…</p>`;
  if (session === null) {
    return html`<${SignIn} message=${message} onSignedIn=${(s) => {
      setMessage('');
      setSession(s);
    }} />`;
  }

  const signOut = async () => {
    stopLive();
    try {
      await api('DELETE', '/api/v1/session', undefined, { quiet401: true });
    } catch {
      // Already ended on the server: signed out either way.
    }
    setMessage('You have signed out.');
    setSession(null);
  };

  const current = `#/${route(hash).parts[0] ?? ''}`;
  return html`
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/">Kernex</a>
        <nav aria-label="Main">
          <ul>
            ${NAV.filter(([, , need]) => can(session.role, need)).map(
              ([href, label]) => html`<li><a href=${href} aria-current=${current === href ? 'page' : undefined}>${label}</a></li>`,
            )}
          </ul>
        </nav>
        <div class="who">
          <span class="role" title="Signed in with this key">${session.keyName} (${session.role})</span>
          <button type="button" onClick=${signOut}>Sign out</button>
        </div>
      </header>
      <${Screen} session=${session} hash=${hash} />
    </div>
  `;
}

render(html`<${App} />`, document.getElementById('app'));
