/** How a swarm is spread: over its worker processes, and each device over the nodes of a cluster. */

/** One worker's share of the swarm: clients [offset, offset + count). */
export interface SwarmSlice {
  offset: number;
  count: number;
}

/**
 * Splits `total` clients into at most `parts` contiguous slices whose sizes
 * differ by at most one (the first `total % parts` get the extra client); no
 * slice is empty, so fewer clients than parts make fewer slices.
 */
export function sliceSwarm(total: number, parts: number): SwarmSlice[] {
  if (!Number.isInteger(total) || total < 0 || !Number.isInteger(parts) || parts < 1) throw new RangeError('sliceSwarm needs total >= 0 and parts >= 1');
  const n = Math.min(parts, total);
  const slices: SwarmSlice[] = [];
  let offset = 0;
  for (let p = 0; p < n; p++) {
    const count = Math.floor(total / n) + (p < total % n ? 1 : 0);
    slices.push({ offset, count });
    offset += count;
  }
  return slices;
}

/**
 * The broker URL list device `index` is given, as a cluster tells its devices
 * the `mqtt` list: it starts at node `index % urls.length` (so devices spread
 * evenly over the nodes) and goes on round the others, which is where it fails
 * over to.
 */
export function urlListFor(index: number, urls: readonly string[]): string[] {
  if (urls.length === 0) throw new RangeError('no broker URLs');
  const first = index % urls.length;
  return [...urls.slice(first), ...urls.slice(0, first)];
}
