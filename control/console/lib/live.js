// One EventSource for the whole console (GET /api/v1/events): no connection
// and no polling per device. The browser reconnects by itself; each `ready`
// (first connect and every reconnect) tells screens to reload what they show,
// since events missed while disconnected are not replayed.
import { api } from './api.js';

const handlers = { device: new Set(), execution: new Set(), deployment: new Set(), ready: new Set() };
let source;
/**
 * The latest change seen of each device since the stream (re)connected. A page
 * read from the API may lag an event (presence is written in batches), so
 * screens lay these over what they load: the newest word wins.
 */
const seen = new Map();
handlers.device.add((d) => seen.set(d.id, { ...seen.get(d.id), ...d }));
handlers.ready.add(() => seen.clear());

/** `device` with the live changes seen since it was read laid over it. */
export const withLive = (device) => (seen.has(device.id) ? { ...device, ...seen.get(device.id) } : device);
let stopped = true;

function connect() {
  source = new EventSource('/api/v1/events');
  for (const type of Object.keys(handlers)) {
    source.addEventListener(type, (e) => {
      const data = JSON.parse(e.data);
      for (const fn of handlers[type]) fn(data);
    });
  }
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED || stopped) return;
    // Closed for good (e.g. a 401): find out whether the session is gone, else retry.
    api('GET', '/api/v1/session').then(
      () => setTimeout(() => !stopped && connect(), 2000),
      () => {},
    );
  };
}

export function startLive() {
  if (!stopped) return;
  stopped = false;
  connect();
}

export function stopLive() {
  stopped = true;
  source?.close();
  source = undefined;
}

/** Subscribes to one event type; returns the unsubscribe (use in an effect's cleanup). */
export function onLive(type, fn) {
  handlers[type].add(fn);
  return () => handlers[type].delete(fn);
}

/** Calls `fn` at most once per `ms`, trailing: for reloads triggered by bursts of events. */
export function throttle(fn, ms) {
  let timer;
  let last = 0;
  const run = () => {
    timer = undefined;
    last = Date.now();
    fn();
  };
  const t = () => {
    if (timer) return;
    timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
  };
  t.cancel = () => clearTimeout(timer);
  return t;
}
