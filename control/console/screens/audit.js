import { get, withQuery } from '../lib/api.js';
import { when } from '../lib/format.js';
import { html, useEffect, useState } from '../lib/html.js';

/** The audit log, newest first, filtered by actor and result, paged by the server. */
export function AuditScreen() {
  const [filters, setFilters] = useState({ actor: '', result: '' });
  const [cursors, setCursors] = useState([undefined]);
  const [page, setPage] = useState({ items: [], nextCursor: null });
  const [error, setError] = useState('');
  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    get(withQuery('/api/v1/audit', { ...filters, limit: 50, cursor })).then(setPage, (e) => setError(e.message));
  }, [filters, cursor]);
  const set = (k) => (e) => {
    setFilters({ ...filters, [k]: e.currentTarget.value });
    setCursors([undefined]);
  };
  return html`
    <main>
      <h1>Audit log</h1>
      <form class="filters" onSubmit=${(e) => e.preventDefault()}>
        <label>Actor (key or device id) <input value=${filters.actor} onInput=${set('actor')} /></label>
        <label>Result
          <select value=${filters.result} onChange=${set('result')}><option value="">any</option><option>success</option><option>failure</option></select>
        </label>
      </form>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <table>
        <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Result</th></tr></thead>
        <tbody>${page.items.map(
          (a) => html`<tr>
            <td>${when(a.at)}</td>
            <td>${a.actor.name ?? a.actor.id ?? a.actor.kind}</td>
            <td>${a.action}</td>
            <td class="mono">${a.targetId ?? ''}</td>
            <td>${a.result} (${a.statusCode}${a.errorCode ? ` ${a.errorCode}` : ''})</td>
          </tr>`,
        )}</tbody>
      </table>
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
        <button type="button" disabled=${!page.nextCursor} onClick=${() => setCursors([...cursors, page.nextCursor])}>Next page</button>
      </nav>
    </main>
  `;
}
