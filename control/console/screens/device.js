import { api, can, get, withQuery } from '../lib/api.js';
import { Chart } from '../lib/chart.js';
import { presence, when } from '../lib/format.js';
import { html, useEffect, useState } from '../lib/html.js';
import { onLive, throttle, withLive } from '../lib/live.js';

const WINDOWS = ['1h', '24h', '7d'];
const PERCENT = [
  { label: 'CPU %', key: 'cpu' },
  { label: 'Memory %', key: 'mem' },
  { label: 'Disk %', key: 'disk' },
];
const LOAD = [{ label: 'Load (1 min)', key: 'load' }];

/** Everything a device reports (name, tags, hardware, errors) is rendered as text by Preact. */
export function DeviceScreen({ id, role }) {
  const [device, setDevice] = useState();
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [windowName, setWindow] = useState('1h');
  const [series, setSeries] = useState();
  const [executions, setExecutions] = useState([]);
  const [tags, setTags] = useState('');

  const loadDevice = () =>
    get(`/api/v1/devices/${id}`).then(
      (d) => {
        setDevice(withLive(d));
        setTags(d.tags.join(', '));
      },
      (e) => setError(e.message),
    );
  const loadExecutions = () => get(withQuery(`/api/v1/devices/${id}/executions`, { limit: 50 })).then((p) => setExecutions(p.items), () => {});

  useEffect(() => {
    loadDevice();
    loadExecutions();
    const reloadExecutions = throttle(loadExecutions, 1000);
    const offs = [
      onLive('device', (d) => d.id === id && setDevice((cur) => (cur ? { ...cur, ...d } : cur))),
      onLive('execution', (e) => e.deviceId === id && reloadExecutions()),
      onLive('ready', () => {
        loadDevice();
        reloadExecutions();
      }),
    ];
    return () => {
      reloadExecutions.cancel();
      offs.forEach((off) => off());
    };
  }, [id]);

  useEffect(() => {
    setSeries(undefined);
    const ms = { '1h': 3_600_000, '24h': 86_400_000, '7d': 604_800_000 }[windowName];
    get(withQuery(`/api/v1/devices/${id}/telemetry/series`, { window: windowName })).then((s) => setSeries({ ...s, from: Date.now() - ms, to: Date.now() }), (e) => setError(e.message));
  }, [id, windowName]);

  const act = async (action, question) => {
    if (!confirm(question)) return;
    setNotice('');
    try {
      const method = action === 'decommission' ? 'DELETE' : 'POST';
      const path = action === 'decommission' ? `/api/v1/devices/${id}` : `/api/v1/devices/${id}/${action}`;
      setDevice(await api(method, path));
      setNotice(`Device ${action === 'decommission' ? 'decommissioned' : `${action}ed`}.`);
    } catch (e) {
      setNotice(e.message);
    }
  };

  const saveTags = async (e) => {
    e.preventDefault();
    try {
      const list = tags.split(',').map((t) => t.trim()).filter(Boolean);
      setDevice(await api('PATCH', `/api/v1/devices/${id}`, { tags: list }));
      setNotice('Tags saved.');
    } catch (err) {
      setNotice(err.message);
    }
  };

  if (error && !device) return html`<main><p class="error" role="alert">${error}</p></main>`;
  if (!device) return html`<main><p class="loading">Loading…</p></main>`;
  const operator = can(role, 'operator');
  const hardware = Object.entries(device.hardware ?? {});
  return html`
    <main>
      <p><a href="#/devices">← Devices</a></p>
      <h1 data-testid="device-name">${device.name ?? device.id}</h1>
      ${notice && html`<p class="notice" role="status">${notice}</p>`}
      <section class="identity">
        <dl>
          <dt>ID</dt><dd class="mono">${device.id}</dd>
          <dt>Status</dt><dd data-testid="device-status">${device.status}</dd>
          <dt>Presence</dt><dd><span class=${`presence ${presence(device.online)}`} data-presence=${presence(device.online)}>${presence(device.online)}</span></dd>
          <dt>Last seen</dt><dd>${when(device.lastSeenAt)}</dd>
          <dt>Registered</dt><dd>${when(device.createdAt)}</dd>
          ${hardware.map(([k, v]) => html`<dt>${k}</dt><dd>${typeof v === 'string' ? v : JSON.stringify(v)}</dd>`)}
        </dl>
        ${operator
          ? html`<form class="tags" onSubmit=${saveTags}>
              <label>Tags (comma-separated) <input value=${tags} onInput=${(e) => setTags(e.currentTarget.value)} /></label>
              <button type="submit">Save tags</button>
            </form>`
          : html`<p>Tags: ${device.tags.map((t) => html`<span class="tag">${t}</span>`)}</p>`}
        ${operator &&
        html`<div class="actions">
          ${(device.status === 'pending' || device.status === 'rejected') && html`<button type="button" onClick=${() => act('accept', 'Accept this device? It may then connect and receive deployments.')}>Accept</button>`}
          ${(device.status === 'pending' || device.status === 'accepted') && html`<button type="button" onClick=${() => act('reject', 'Reject this device? Its connection ends at once.')}>Reject</button>`}
          ${device.status !== 'decommissioned' && html`<button type="button" class="danger" onClick=${() => act('decommission', 'Decommission this device for good? It can never connect again.')}>Decommission</button>`}
        </div>`}
      </section>
      <section>
        <h2>Installed bundles</h2>
        ${Object.keys(device.bundles).length === 0
          ? html`<p>None.</p>`
          : html`<table><thead><tr><th scope="col">Bundle</th><th scope="col">Version</th></tr></thead>
              <tbody>${Object.entries(device.bundles).map(([n, v]) => html`<tr><td>${n}</td><td>${v}</td></tr>`)}</tbody></table>`}
      </section>
      <section>
        <h2>Telemetry</h2>
        <div class="segmented" role="group" aria-label="Window">
          ${WINDOWS.map((w) => html`<button type="button" aria-pressed=${w === windowName} onClick=${() => setWindow(w)}>${w}</button>`)}
        </div>
        ${!series
          ? html`<p class="loading">Loading…</p>`
          : series.points.length === 0
            ? html`<p>No telemetry in this window.</p>`
            : html`<div class="charts">
                <${Chart} title="CPU, memory and disk" unit="%" points=${series.points} series=${PERCENT} from=${series.from} to=${series.to} />
                <${Chart} title="Load" unit="" points=${series.points} series=${LOAD} from=${series.from} to=${series.to} />
              </div>
              <p class="hint">Means per ${series.bucketS} s, computed by the server.</p>`}
      </section>
      <section>
        <h2>Executions</h2>
        ${executions.length === 0
          ? html`<p>None yet.</p>`
          : html`<ol class="timeline">
              ${executions.map(
                (e) => html`<li data-state=${e.state}>
                  <span class=${`state ${e.state}`}>${e.state}</span>
                  <a href=${`#/deployments/${e.deploymentId}`}>${e.bundle.name}@${e.bundle.version}</a>
                  <time>${when(e.updatedAt)}</time>
                  ${e.error && html`<pre class="error-text">${e.error}</pre>`}
                </li>`,
              )}
            </ol>`}
      </section>
    </main>
  `;
}
