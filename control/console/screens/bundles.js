import { api, can, get, upload, withQuery } from '../lib/api.js';
import { bytes, when } from '../lib/format.js';
import { html, useEffect, useState } from '../lib/html.js';

/** Bundles: upload (raw body, XHR progress), manifest fields, sha256, signature, size; delete (refused while in use). */
export function BundlesScreen({ role }) {
  const [page, setPage] = useState({ items: [], nextCursor: null });
  const [cursors, setCursors] = useState([undefined]);
  const [file, setFile] = useState();
  const [progress, setProgress] = useState(); // { sent, total } while uploading
  const [notice, setNotice] = useState('');
  const [error, setError] = useState('');
  const cursor = cursors[cursors.length - 1];
  const load = () => get(withQuery('/api/v1/bundles', { limit: 50, cursor })).then(setPage, (e) => setError(e.message));
  useEffect(() => {
    load();
  }, [cursor]);

  const submit = async (e) => {
    e.preventDefault();
    if (!file) return;
    setError('');
    setNotice('');
    setProgress({ sent: 0, total: file.size });
    try {
      const b = await upload('/api/v1/bundles', file, (sent, total) => setProgress({ sent, total }));
      setNotice(`Uploaded ${b.name}@${b.version}.`);
      e.currentTarget?.reset?.();
      setFile(undefined);
      await load();
    } catch (err) {
      setError(err.message);
    } finally {
      setProgress(undefined);
    }
  };

  const remove = async (b) => {
    if (!confirm(`Delete bundle ${b.name}@${b.version}?`)) return;
    setError('');
    try {
      await api('DELETE', `/api/v1/bundles/${b.id}`);
      setNotice(`Deleted ${b.name}@${b.version}.`);
      await load();
    } catch (err) {
      setError(err.message);
    }
  };

  const operator = can(role, 'operator');
  return html`
    <main>
      <h1>Bundles</h1>
      ${operator &&
      html`<form class="upload" onSubmit=${submit}>
        <label>Bundle file (.tar.gz) <input type="file" accept=".gz,.tgz,application/gzip" onChange=${(e) => setFile(e.currentTarget.files[0])} /></label>
        <button type="submit" disabled=${!file || progress}>Upload</button>
        ${progress &&
        html`<label class="progress">Upload progress
          <progress max=${progress.total || 1} value=${progress.sent}></progress>
          <span>${Math.round((100 * progress.sent) / (progress.total || 1))} %</span>
        </label>`}
      </form>`}
      ${notice && html`<p class="notice" role="status">${notice}</p>`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <table>
        <thead><tr><th scope="col">Bundle</th><th scope="col">Description</th><th scope="col">Size</th><th scope="col">SHA-256</th><th scope="col">Signature</th><th scope="col">Uploaded</th>${operator && html`<th scope="col">Actions</th>`}</tr></thead>
        <tbody>
          ${page.items.map(
            (b) => html`<tr data-bundle=${`${b.name}@${b.version}`}>
              <td>${b.name}@${b.version}</td>
              <td>${b.description ?? ''}</td>
              <td>${bytes(b.size)}</td>
              <td class="mono wrap">${b.sha256}</td>
              <td><details><summary>${b.signature.slice(0, 16)}…</summary><code class="wrap">${b.signature}</code></details></td>
              <td>${when(b.createdAt)}</td>
              ${operator && html`<td><button type="button" class="danger" onClick=${() => remove(b)}>Delete</button></td>`}
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
