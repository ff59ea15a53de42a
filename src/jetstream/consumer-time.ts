/**
 * Times as the JetStream API writes them: RFC 3339 in UTC with up to nine fraction digits,
 * trailing zeros dropped (Go's RFC3339Nano), from and to microseconds since the epoch.
 */

export const ZERO_TIME = '0001-01-01T00:00:00Z';

function pad2(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

/** `2026-11-27T05:30:35.744664Z` for a time in microseconds (our clock has no finer grain). */
export function formatTimeUs(us: number): string {
  const secs = Math.floor(us / 1e6);
  const d = new Date(secs * 1000);
  let frac = String(us - secs * 1e6).padStart(6, '0');
  while (frac.length > 0 && frac.charCodeAt(frac.length - 1) === 48) frac = frac.slice(0, -1);
  return (
    `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}` +
    `T${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}` +
    (frac.length > 0 ? '.' + frac : '') +
    'Z'
  );
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Microseconds since the epoch for an RFC 3339 time as Go's time.Time accepts it in JSON;
 * null when it is not one. Digits past the microsecond are dropped.
 */
export function parseTimeToUs(s: string): number | null {
  const m = RFC3339.exec(s);
  if (m === null) return null;
  const [, y, mo, d, h, mi, sec, frac, , sign, oh, om] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(sec);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return null;
  let ms = Date.UTC(Number(y), month - 1, day, hour, minute, second);
  if (Number.isNaN(ms)) return null;
  if (sign !== undefined) {
    const off = (Number(oh) * 60 + Number(om)) * 60_000;
    ms += sign === '+' ? -off : off;
  }
  const us = frac === undefined ? 0 : Number(frac.padEnd(9, '0').slice(0, 6));
  return ms * 1000 + us;
}
