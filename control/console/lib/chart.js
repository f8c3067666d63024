import uPlot from '../vendor/uplot.js';
import { html, useEffect, useRef } from './html.js';

/**
 * A uPlot line chart of server-downsampled points. `series`: [{label, key}];
 * `points`: [{at, [key]: number|null}]. uPlot draws on a canvas (no markup from data).
 */
export function Chart({ title, points, series, unit, from, to }) {
  const box = useRef();
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const colors = ['#2563eb', '#16a34a', '#d97706', '#9333ea'];
    const data = [points.map((p) => Date.parse(p.at) / 1000), ...series.map((s) => points.map((p) => p[s.key]))];
    const plot = new uPlot(
      {
        width: Math.max(280, el.clientWidth || 600),
        height: 200,
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: false }))],
        axes: [{}, { label: unit }],
        // The whole window, however few buckets have data.
        scales: { x: { time: true, ...(from && to ? { range: [from / 1000, to / 1000] } : {}) } },
      },
      data,
      el,
    );
    const resize = () => plot.setSize({ width: Math.max(280, el.clientWidth), height: 200 });
    addEventListener('resize', resize);
    return () => {
      removeEventListener('resize', resize);
      plot.destroy();
    };
  }, [points, series, unit, from, to]);
  return html`<figure class="chart" data-points=${points.length}>
    <figcaption>${title}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title}: ${points.length} points`}></div>
  </figure>`;
}
