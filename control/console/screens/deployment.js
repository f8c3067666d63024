import { api, can, get, withQuery } from '../lib/api.js';
import { when } from '../lib/format.js';
import { html, useEffect, useState } from '../lib/html.js';
import { onLive, throttle } from '../lib/live.js';

const STATES = ['queued', 'sent', 'received', 'downloading', 'installing', 'verifying', 'succeeded', 'failed', 'rolled_back', 'cancelled', 'timed_out', 'skipped'];
const ENDED = new Set(['succeeded', 'failed', 'rolled_back', 'cancelled', 'timed_out', 'skipped']);

/**
 * Each phase's cumulative percent (DESIGN §5). The server may keep phases as
 * shares (adding up to at most 100) or as cumulative percents (rising to 100).
 */
function cumulative(phases) {
  const sum = phases.reduce((a, p) => a + p.percent, 0);
  if (sum > 100) return phases.map((p) => p.percent);
  let run = 0;
  return phases.map((p) => Math.min(100, Math.round((run += p.percent) * 100) / 100));
}

function Bar({ counts, total }) {
  const ended = STATES.filter((s) => ENDED.has(s)).reduce((a, s) => a + (counts[s] ?? 0), 0);
  return html`<progress max=${total || 1} value=${ended} aria-label=${`${ended} of ${total} ended`}></progress>`;
}

/** One deployment: live status, progress per phase and per state, executions by state with errors, cancel. */
export function DeploymentScreen({ id, role }) {
  const [d, setD] = useState();
  const [phases, setPhases] = useState([]);
  const [state, setState] = useState('');
  const [execs, setExecs] = useState({ items: [], nextCursor: null });
  const [cursors, setCursors] = useState([undefined]);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    let gone = false;
    const load = () => {
      get(`/api/v1/deployments/${id}`).then((x) => !gone && setD(x), (e) => !gone && setError(e.message));
      get(`/api/v1/deployments/${id}/phases`).then((x) => !gone && setPhases(x.items), () => {});
      get(withQuery(`/api/v1/deployments/${id}/executions`, { state, limit: 50, cursor })).then((x) => !gone && setExecs(x), () => {});
    };
    const reload = throttle(load, 1000);
    load();
    const offs = [
      onLive('deployment', (x) => {
        if (x.id !== id) return;
        setD((cur) => (cur ? { ...cur, ...x } : cur));
        reload();
      }),
      onLive('execution', (x) => x.deploymentId === id && reload()),
      onLive('ready', reload),
    ];
    return () => {
      gone = true;
      reload.cancel();
      offs.forEach((off) => off());
    };
  }, [id, state, cursor]);

  const cancel = async () => {
    if (!confirm('Cancel this deployment? Queued executions end, and devices not yet installing are told to stop.')) return;
    try {
      setD(await api('POST', `/api/v1/deployments/${id}/cancel`));
      setNotice('Deployment cancelled.');
    } catch (e) {
      setNotice(e.message);
    }
  };

  if (error && !d) return html`<main><p class="error" role="alert">${error}</p></main>`;
  if (!d) return html`<main><p class="loading">Loading…</p></main>`;
  const rollout = d.rollout;
  const upTo = cumulative(rollout.phases);
  return html`
    <main>
      <p><a href="#/deployments">← Deployments</a></p>
      <h1>${d.bundle.name}@${d.bundle.version}</h1>
      ${notice && html`<p class="notice" role="status">${notice}</p>`}
      <dl class="summary">
        <dt>Status</dt><dd><span class=${`status ${d.status}`} data-testid="deployment-status">${d.status}</span>${d.reason ? ` — ${d.reason}` : ''}</dd>
        <dt>Succeeded</dt><dd data-testid="succeeded">${d.counts.succeeded}/${d.total}</dd>
        <dt>Phase</dt><dd>${d.phase + 1} of ${rollout.phases.length}</dd>
        <dt>Rollout</dt><dd>phases ${upTo.map((p) => `${p} %`).join(' → ')}; max failure ${rollout.maxFailurePercent} %; max concurrent ${rollout.maxConcurrent ?? 'no limit'}; ${rollout.rollbackOnAbort ? 'rolls back on abort' : 'no rollback on abort'}</dd>
        <dt>Created</dt><dd>${when(d.createdAt)}</dd>
      </dl>
      ${can(role, 'operator') && d.status === 'running' && html`<button type="button" class="danger" onClick=${cancel}>Cancel deployment</button>`}
      <section>
        <h2>Progress per phase</h2>
        <table class="phases">
          <thead><tr><th scope="col">Phase</th><th scope="col">Up to</th><th scope="col">Progress</th><th scope="col">Ended</th><th scope="col">By state</th></tr></thead>
          <tbody>
            ${phases.map(
              (p) => html`<tr data-phase=${p.phase}>
                <td>${p.phase + 1}</td>
                <td>${upTo[p.phase] ?? ''} %</td>
                <td><${Bar} counts=${p.counts} total=${p.total} /></td>
                <td>${STATES.filter((s) => ENDED.has(s)).reduce((a, s) => a + (p.counts[s] ?? 0), 0)}/${p.total}</td>
                <td class="states">${STATES.filter((s) => p.counts[s]).map((s) => html`<span class=${`state ${s}`} data-state=${s} data-count=${p.counts[s]}>${s} ${p.counts[s]}</span> `)}</td>
              </tr>`,
            )}
          </tbody>
        </table>
        <p data-testid="counts">${STATES.filter((s) => d.counts[s]).map((s) => `${s}: ${d.counts[s]}`).join(', ') || 'no executions'}</p>
      </section>
      <section>
        <h2>Executions</h2>
        <label>State
          <select value=${state} onChange=${(e) => {
            setState(e.currentTarget.value);
            setCursors([undefined]);
          }}>
            <option value="">any</option>
            ${STATES.map((s) => html`<option value=${s}>${s}</option>`)}
          </select>
        </label>
        <table class="executions">
          <thead><tr><th scope="col">Device</th><th scope="col">State</th><th scope="col">Error</th><th scope="col">Updated</th></tr></thead>
          <tbody>
            ${execs.items.map(
              (e) => html`<tr data-device-id=${e.deviceId}>
                <td><a class="mono" href=${`#/devices/${e.deviceId}`}>${e.deviceId}</a></td>
                <td><span class=${`state ${e.state}`}>${e.state}</span></td>
                <td>${e.error ? html`<pre class="error-text">${e.error}</pre>` : ''}</td>
                <td>${when(e.updatedAt)}</td>
              </tr>`,
            )}
          </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
          <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
          <button type="button" disabled=${!execs.nextCursor} onClick=${() => setCursors([...cursors, execs.nextCursor])}>Next page</button>
        </nav>
      </section>
    </main>
  `;
}
