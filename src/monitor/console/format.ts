/**
 * How the console says numbers: counts grouped by thousands ("41 000"), rates with k/M
 * ("1.2k"), sizes in B/KB/MB/GB (1024-based, as nats-server's config sizes), durations in
 * words ("3 h 12 min"). The problem sentences use them on the server and the page ships the
 * very same functions (their source text, see page-script.ts), so both say a number alike.
 * Each function must therefore stay self-contained: no reference to anything outside its body.
 */

/** An exact count, grouped by thousands with a space: 41000 -> "41 000". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const neg = n < 0;
  const s = String(Math.round(Math.abs(n)));
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (i > 0 && (s.length - i) % 3 === 0) out += ' ';
    out += s[i];
  }
  return neg ? '-' + out : out;
}

/**
 * A rate or a large count, short: 950 -> "950", 1234 -> "1.23k", 5600000 -> "5.6M" (999.5 and
 * up would round to "1000", so it goes to the next unit). No comment inside the body: the page
 * ships the body's text and promises no double slash.
 */
export function formatShort(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  const units = ['', 'k', 'M', 'G', 'T'];
  let u = 0;
  let v = a;
  while (v >= 999.5 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  let digits: string;
  if (u === 0) digits = v >= 100 || v === Math.round(v) ? String(Math.round(v)) : String(Math.round(v * 10) / 10);
  else digits = v >= 100 ? String(Math.round(v)) : String(Number(v.toPrecision(3)));
  return (n < 0 ? '-' : '') + digits + units[u];
}

/** Bytes: 512 -> "512 B", 12900000 -> "12.3 MB", 1073741824 -> "1 GB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let u = 0;
  let v = a;
  while (v >= 1023.5 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const digits = u === 0 || v >= 100 ? String(Math.round(v)) : String(Number(v.toPrecision(3)));
  return (n < 0 ? '-' : '') + digits + ' ' + units[u];
}

/** A duration in words, two units at most: 45 s, 2 min 5 s, 3 h 12 min, 4 d 2 h. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 === 0 ? m + ' min' : m + ' min ' + (s % 60) + ' s';
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? h + ' h' : h + ' h ' + (m % 60) + ' min';
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? d + ' d' : d + ' d ' + (h % 24) + ' h';
}
