// Formatting helpers; every one returns a string, rendered as text.
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
export const bytes = (n) => {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
};
export const presence = (online) => (online ? 'online' : 'offline');
export const short = (s, n = 12) => (s && s.length > n ? `${s.slice(0, n)}…` : (s ?? ''));
