import { get, withQuery } from '../lib/api.js';
import { html, useEffect, useRef, useState } from '../lib/html.js';
import { presence, when } from '../lib/format.js';
import { onLive, throttle, withLive } from '../lib/live.js';

const PAGE = 50;

/**
 * Devices: the server filters and pages (`q`, status, online, tag, cursor);
 * presence changes arrive on the one event stream and patch the rows shown.
 * A device not on this page that changes reloads the page (throttled), so new
 * devices appear without a reload.
 */
export function DevicesScreen() {
  const [filters, setFilters] = useState({ q: '', status: '', online: '', tag: '' });
  const [cursors, setCursors] = useState([undefined]); // cursor of each page visited
  const [page, setPage] = useState({ items: [], nextCursor: null });
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState('');
  const pageRef = useRef(page);
  pageRef.current = page;
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    let gone = false;
    const load = () =>
      get(withQuery('/api/v1/devices', { ...filters, limit: PAGE, cursor })).then(
        (p) => {
          if (gone) return;
          setPage({ ...p, items: p.items.map(withLive) });
          setLoaded(true);
          setError('');
        },
        (e) => !gone && setError(e.message),
      );
    const reload = throttle(load, 1000);
    load();
    const offDevice = onLive('device', (d) => {
      const items = pageRef.current.items;
      const i = items.findIndex((x) => x.id === d.id);
      if (i < 0) return reload();
      const next = items.slice();
      next[i] = { ...items[i], ...d };
      // A change that takes a row out of the filter reloads the page.
      if ((filters.online !== '' && String(next[i].online) !== filters.online) || (filters.status && next[i].status !== filters.status)) return reload();
      setPage({ ...pageRef.current, items: next });
    });
    const offReady = onLive('ready', reload);
    return () => {
      gone = true;
      reload.cancel();
      offDevice();
      offReady();
    };
  }, [filters, cursor]);

  const set = (k) => (e) => {
    setFilters({ ...filters, [k]: e.currentTarget.value });
    setCursors([undefined]);
  };

  return html`
    <main>
      <h1>Devices</h1>
      <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
        <label>Search <input type="search" placeholder="name or id" value=${filters.q} onInput=${set('q')} /></label>
        <label>Status
          <select value=${filters.status} onChange=${set('status')}>
            <option value="">any</option>
            ${['pending', 'accepted', 'rejected', 'decommissioned'].map((s) => html`<option value=${s}>${s}</option>`)}
          </select>
        </label>
        <label>Presence
          <select value=${filters.online} onChange=${set('online')}>
            <option value="">any</option><option value="true">online</option><option value="false">offline</option>
          </select>
        </label>
        <label>Tag <input value=${filters.tag} onInput=${set('tag')} /></label>
      </form>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <table class="devices">
        <thead><tr><th scope="col">Name</th><th scope="col">ID</th><th scope="col">Status</th><th scope="col">Presence</th><th scope="col">Tags</th><th scope="col">Last seen</th></tr></thead>
        <tbody>
          ${page.items.map(
            (d) => html`<tr data-device-id=${d.id}>
              <td><a href=${`#/devices/${d.id}`}>${d.name ?? d.id}</a></td>
              <td class="mono">${d.id}</td>
              <td>${d.status}</td>
              <td><span class=${`presence ${presence(d.online)}`} data-presence=${presence(d.online)}>${presence(d.online)}</span></td>
              <td>${d.tags.map((t) => html`<span class="tag">${t}</span>`)}</td>
              <td>${when(d.lastSeenAt)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      ${loaded && page.items.length === 0 && html`<p>No device matches.</p>`}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
        <span>Page ${cursors.length}</span>
        <button type="button" disabled=${!page.nextCursor} onClick=${() => setCursors([...cursors, page.nextCursor])}>Next page</button>
      </nav>
    </main>
  `;
}
