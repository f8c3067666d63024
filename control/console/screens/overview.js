import { get, withQuery } from '../lib/api.js';
import { html, useEffect, useState } from '../lib/html.js';
import { onLive, throttle } from '../lib/live.js';

const STATUSES = ['accepted', 'pending', 'rejected', 'decommissioned'];

/** Fleet overview: server-side aggregates only (GET /api/v1/fleet/summary), refreshed on live events. */
export function OverviewScreen() {
  const [summary, setSummary] = useState();
  const [running, setRunning] = useState([]);
  const [error, setError] = useState('');
  useEffect(() => {
    const load = () => {
      get('/api/v1/fleet/summary').then(setSummary, (e) => setError(e.message));
      get(withQuery('/api/v1/deployments', { status: 'running', limit: 20 })).then((p) => setRunning(p.items), () => {});
    };
    const reload = throttle(load, 2000);
    load();
    const offs = ['device', 'deployment', 'ready'].map((t) => onLive(t, reload));
    return () => {
      reload.cancel();
      offs.forEach((off) => off());
    };
  }, []);
  if (error) return html`<main><p class="error" role="alert">${error}</p></main>`;
  if (!summary) return html`<main><p class="loading">Loading…</p></main>`;
  return html`
    <main>
      <h1>Fleet overview</h1>
      <section class="cards" aria-label="Devices">
        <div class="card"><span class="num" data-testid="total">${summary.total}</span> devices</div>
        <div class="card"><span class="num" data-testid="online">${summary.online}</span> online</div>
        <div class="card"><span class="num" data-testid="offline">${summary.offline}</span> offline</div>
        ${STATUSES.map((s) => html`<div class="card"><span class="num">${summary.byStatus[s] ?? 0}</span> ${s}</div>`)}
      </section>
      <section>
        <h2>Deployments running (${summary.deploymentsRunning})</h2>
        ${running.length === 0
          ? html`<p>None.</p>`
          : html`<ul>${running.map((d) => html`<li><a href=${`#/deployments/${d.id}`}>${d.bundle.name}@${d.bundle.version}</a> — ${d.counts.succeeded}/${d.total} succeeded</li>`)}</ul>`}
      </section>
      <section>
        <h2>Versions installed</h2>
        ${summary.versions.length === 0
          ? html`<p>No bundle is installed on any device yet.</p>`
          : html`<table>
              <thead><tr><th scope="col">Bundle</th><th scope="col">Version</th><th scope="col">Devices</th></tr></thead>
              <tbody>${summary.versions.map((v) => html`<tr><td>${v.name}</td><td>${v.version}</td><td>${v.devices}</td></tr>`)}</tbody>
            </table>`}
      </section>
    </main>
  `;
}
