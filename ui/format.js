// Formatting of numbers, sizes, durations and times for display.

const nf = new Intl.NumberFormat(undefined);

export function number(n) {
  return typeof n === 'number' && Number.isFinite(n) ? nf.format(n) : '—';
}

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

export function percent(n) {
  return typeof n === 'number' && Number.isFinite(n) ? `${n.toFixed(n < 10 ? 1 : 0)} %` : '—';
}

/** Seconds → "3 d 4 h", "2 h 5 min", "4 min 10 s", "12 s". */
export function uptime(s) {
  if (typeof s !== 'number' || !Number.isFinite(s)) return '—';
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60;
  if (d) return `${d} d ${hh} h`;
  if (hh) return `${hh} h ${m} min`;
  if (m) return `${m} min ${ss} s`;
  return `${ss} s`;
}

/** Milliseconds → "850 ms", "1.2 s", "3 min 4 s". */
export function duration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return uptime(ms / 1000);
}

/** US dollars with enough digits for small agent costs. */
export function usd(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  return `$${n.toFixed(n !== 0 && n < 0.01 ? 4 : n < 1 ? 4 : 2)}`;
}

/** RFC 3339 → local date and time. */
export function dateTime(s) {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? (s ?? '—') : d.toLocaleString();
}

/** RFC 3339 → local time of day (HH:MM:SS). */
export function time(s) {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString(undefined, { hour12: false });
}

/** "5 min ago" style relative time. */
export function ago(s, now = Date.now()) {
  const t = new Date(s).getTime();
  if (Number.isNaN(t)) return '—';
  return `${uptime((now - t) / 1000)} ago`;
}

/** Shortens a long id for display: "3f2a…9c1d". */
export function shortId(id, keep = 8) {
  if (!id) return '—';
  return id.length > keep + 2 ? `${id.slice(0, keep)}…` : id;
}
