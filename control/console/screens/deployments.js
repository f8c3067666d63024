import { api, can, get, withQuery } from '../lib/api.js';
import { when } from '../lib/format.js';
import { html, useEffect, useState } from '../lib/html.js';
import { onLive, throttle } from '../lib/live.js';

const DEVICE_ID = /^[0-9a-f]{24}$/;
const list = (s) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

/** Phases "1,10,100" → cumulative percents (DESIGN §5), each with `waitS`. */
function phasesOf(text, waitS) {
  return list(text).map((p) => ({ percent: Number(p), waitS }));
}

function NewDeployment({ onCreated }) {
  const [bundles, setBundles] = useState([]);
  const [form, setForm] = useState({ bundleId: '', by: 'tags', tags: '', deviceIds: '', phases: '100', waitS: 0, maxFailurePercent: 100, maxConcurrent: '', rollbackOnAbort: true, soakS: 0 });
  const [count, setCount] = useState();
  const [error, setError] = useState('');
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });

  useEffect(() => {
    get(withQuery('/api/v1/bundles', { limit: 200 })).then((p) => {
      setBundles(p.items);
      if (p.items[0]) setForm((f) => ({ ...f, bundleId: f.bundleId || p.items[p.items.length - 1].id }));
    });
  }, []);

  // Live count of matching devices, from the server (never computed over pages here).
  useEffect(() => {
    const ids = list(form.deviceIds).filter((x) => DEVICE_ID.test(x));
    const q = form.by === 'all' ? { all: true } : form.by === 'tags' ? { tag: list(form.tags) } : { deviceId: ids };
    if (form.by !== 'all' && (q.tag ?? q.deviceId).length === 0) return setCount(0);
    const t = setTimeout(() => get(withQuery('/api/v1/fleet/target-count', q)).then((r) => setCount(r.count), () => setCount(undefined)), 200);
    return () => clearTimeout(t);
  }, [form.by, form.tags, form.deviceIds]);

  const submit = async (e) => {
    e.preventDefault();
    setError('');
    const target = form.by === 'all' ? { all: true } : form.by === 'tags' ? { tags: list(form.tags) } : { deviceIds: list(form.deviceIds) };
    const rollout = {
      phases: phasesOf(form.phases, Number(form.waitS) || 0),
      maxFailurePercent: Number(form.maxFailurePercent),
      rollbackOnAbort: form.rollbackOnAbort,
      ...(form.maxConcurrent !== '' ? { maxConcurrent: Number(form.maxConcurrent) } : {}),
      ...(Number(form.soakS) > 0 ? { soakS: Number(form.soakS) } : {}),
    };
    try {
      const d = await api('POST', '/api/v1/deployments', { bundleId: form.bundleId, target, rollout });
      onCreated(d);
    } catch (err) {
      setError(err.message);
    }
  };

  return html`
    <form class="new-deployment" onSubmit=${submit} aria-label="New deployment">
      <h2>New deployment</h2>
      <label>Bundle
        <select value=${form.bundleId} onChange=${set('bundleId')} required>
          ${bundles.length === 0 && html`<option value="">no bundle uploaded yet</option>`}
          ${bundles.map((b) => html`<option value=${b.id}>${b.name}@${b.version}</option>`)}
        </select>
      </label>
      <fieldset>
        <legend>Target</legend>
        ${[['tags', 'Devices with tags'], ['devices', 'Devices by id'], ['all', 'All accepted devices']].map(
          ([v, label]) => html`<label class="inline"><input type="radio" name="by" value=${v} checked=${form.by === v} onChange=${set('by')} /> ${label}</label>`,
        )}
        ${form.by === 'tags' && html`<label>Tags (comma-separated) <input value=${form.tags} onInput=${set('tags')} /></label>`}
        ${form.by === 'devices' && html`<label>Device ids (one per line) <textarea rows="3" value=${form.deviceIds} onInput=${set('deviceIds')}></textarea></label>`}
        <p role="status" data-testid="target-count">${count === undefined ? 'Counting…' : `Matches ${count} device${count === 1 ? '' : 's'}`}</p>
      </fieldset>
      <fieldset>
        <legend>Rollout</legend>
        <label>Phases (cumulative %, e.g. 1,10,100) <input value=${form.phases} onInput=${set('phases')} /></label>
        <label>Wait between phases (s) <input type="number" min="0" value=${form.waitS} onInput=${set('waitS')} /></label>
        <label>Max failure % <input type="number" min="0" max="100" value=${form.maxFailurePercent} onInput=${set('maxFailurePercent')} /></label>
        <label>Max concurrent <input type="number" min="1" placeholder="no limit" value=${form.maxConcurrent} onInput=${set('maxConcurrent')} /></label>
        <label>Soak (s) <input type="number" min="0" value=${form.soakS} onInput=${set('soakS')} /></label>
        <label class="inline"><input type="checkbox" checked=${form.rollbackOnAbort} onChange=${set('rollbackOnAbort')} /> Roll back on abort</label>
      </fieldset>
      <button type="submit" disabled=${!form.bundleId}>Create deployment</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  `;
}

/** Deployments: name@version, status and succeeded/total, live. */
export function DeploymentsScreen({ role }) {
  const [page, setPage] = useState({ items: [], nextCursor: null });
  const [cursors, setCursors] = useState([undefined]);
  const [creating, setCreating] = useState(false);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    const load = () => get(withQuery('/api/v1/deployments', { limit: 50, cursor })).then(setPage, () => {});
    const reload = throttle(load, 1000);
    load();
    const offs = [
      onLive('deployment', (d) =>
        setPage((p) => {
          const i = p.items.findIndex((x) => x.id === d.id);
          if (i < 0) {
            reload();
            return p;
          }
          const items = p.items.slice();
          items[i] = { ...items[i], ...d };
          return { ...p, items };
        }),
      ),
      onLive('ready', reload),
    ];
    return () => {
      reload.cancel();
      offs.forEach((off) => off());
    };
  }, [cursor]);

  return html`
    <main>
      <h1>Deployments</h1>
      ${can(role, 'operator') &&
      (creating
        ? html`<${NewDeployment} onCreated=${(d) => (location.hash = `#/deployments/${d.id}`)} />`
        : html`<button type="button" onClick=${() => setCreating(true)}>New deployment</button>`)}
      <table class="deployments">
        <thead><tr><th scope="col">Bundle</th><th scope="col">Status</th><th scope="col">Succeeded</th><th scope="col">Created</th></tr></thead>
        <tbody>
          ${page.items.map(
            (d) => html`<tr data-deployment-id=${d.id}>
              <td><a href=${`#/deployments/${d.id}`}>${d.bundle.name}@${d.bundle.version}</a></td>
              <td><span class=${`status ${d.status}`}>${d.status}</span></td>
              <td>${d.counts.succeeded}/${d.total}</td>
              <td>${when(d.createdAt)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
        <button type="button" disabled=${!page.nextCursor} onClick=${() => setCursors([...cursors, page.nextCursor])}>Next page</button>
      </nav>
    </main>
  `;
}
