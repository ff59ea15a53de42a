/**
 * Value formats of nats-server's monitoring JSON, which comes from Go's encoders: duration
 * strings (time.Duration.String and the monitor's own compact uptime), RFC3339Nano timestamps,
 * and encoding/json output (MarshalIndent layout, HTML-safe string escaping, uint64 numbers).
 */

const NS_PER_US = 1_000;
const NS_PER_MS = 1_000_000;
const NS_PER_S = 1_000_000_000;

/** Digits of `frac` (a fraction of 10^`digits`) with trailing zeros dropped, '' when zero. */
function fraction(frac: number, digits: number): string {
  if (frac === 0) return '';
  let s = String(frac).padStart(digits, '0');
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 48) end--;
  s = s.slice(0, end);
  return '.' + s;
}

/**
 * Go's time.Duration.String for a whole number of nanoseconds: "0s", "363µs",
 * "1.988976ms", "1.5s", "2m0s", "1h2m3.004s".
 */
export function goDuration(ns: number): string {
  if (!Number.isFinite(ns)) return '0s';
  let d = Math.trunc(ns);
  if (d === 0) return '0s';
  const sign = d < 0 ? '-' : '';
  if (d < 0) d = -d;
  if (d < NS_PER_US) return `${sign}${d}ns`;
  if (d < NS_PER_MS) return `${sign}${Math.floor(d / NS_PER_US)}${fraction(d % NS_PER_US, 3)}µs`;
  if (d < NS_PER_S) return `${sign}${Math.floor(d / NS_PER_MS)}${fraction(d % NS_PER_MS, 6)}ms`;
  const secs = Math.floor(d / NS_PER_S);
  const s = `${secs % 60}${fraction(d % NS_PER_S, 9)}s`;
  const mins = Math.floor(secs / 60);
  if (mins === 0) return sign + s;
  const hours = Math.floor(mins / 60);
  if (hours === 0) return `${sign}${mins}m${s}`;
  return `${sign}${hours}h${mins % 60}m${s}`;
}

/**
 * A measured round trip in milliseconds as /connz shows it: Go keeps microseconds below
 * one millisecond and nanoseconds elsewhere; an unmeasured RTT is "0s".
 */
export function goRtt(ms: number | undefined): string {
  if (ms === undefined || !(ms > 0)) return '0s';
  let ns = Math.round(ms * NS_PER_MS);
  if (ns > NS_PER_US && ns < NS_PER_MS) ns -= ns % NS_PER_US;
  return goDuration(ns);
}

/**
 * nats-server's compact uptime: whole seconds, split into years (365 d), days, hours,
 * minutes: "0s", "59s", "1m0s", "2h3m4s", "1d2h3m4s", "1y0d0h0m1s".
 */
export function goUptime(ms: number): string {
  const tsecs = ms > 0 ? Math.floor(ms / 1000) : 0;
  const tmins = Math.floor(tsecs / 60);
  const thrs = Math.floor(tmins / 60);
  const tdays = Math.floor(thrs / 24);
  const tyrs = Math.floor(tdays / 365);
  if (tyrs > 0) return `${tyrs}y${tdays % 365}d${thrs % 24}h${tmins % 60}m${tsecs % 60}s`;
  if (tdays > 0) return `${tdays}d${thrs % 24}h${tmins % 60}m${tsecs % 60}s`;
  if (thrs > 0) return `${thrs}h${tmins % 60}m${tsecs % 60}s`;
  if (tmins > 0) return `${tmins}m${tsecs % 60}s`;
  return `${tsecs}s`;
}

/**
 * Go's RFC3339Nano in UTC: fractional seconds with trailing zeros removed, no fraction at all
 * when zero ("2026-11-27T05:31:45.3566Z", "2026-11-27T05:31:45Z"). A Date carries
 * milliseconds; a bigint is nanoseconds since the epoch.
 */
export function rfc3339Nano(t: Date | bigint): string {
  let ms: number;
  let nsInSecond: number;
  if (typeof t === 'bigint') {
    const secs = t >= 0n ? t / 1_000_000_000n : -((-t + 999_999_999n) / 1_000_000_000n);
    nsInSecond = Number(t - secs * 1_000_000_000n);
    ms = Number(secs) * 1000;
  } else {
    ms = t.getTime();
    if (!Number.isFinite(ms)) return '0001-01-01T00:00:00Z';
    const msInSecond = ((ms % 1000) + 1000) % 1000;
    ms -= msInSecond;
    nsInSecond = msInSecond * NS_PER_MS;
  }
  const iso = new Date(ms).toISOString(); // yyyy-mm-ddThh:mm:ss.000Z
  return iso.slice(0, 19) + fraction(nsInSecond, 9) + 'Z';
}

// ---------------------------------------------------------------------------------------------
// JSON as Go's encoding/json writes it

/** Characters encoding/json escapes: JSON's mandatory ones plus the HTML-sensitive `<>&` and U+2028/9. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f<>&\u2028\u2029\ud800-\udfff]/;

function hex4(c: number): string {
  return '\\u' + c.toString(16).padStart(4, '0');
}

function goString(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return '"' + s + '"';
  let out = '"';
  let from = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c === 34) esc = '\\"';
    else if (c === 92) esc = '\\\\';
    else if (c === 10) esc = '\\n';
    else if (c === 13) esc = '\\r';
    else if (c === 9) esc = '\\t';
    else if (c < 0x20 || c === 60 || c === 62 || c === 38 || c === 0x2028 || c === 0x2029) esc = hex4(c);
    else if (c >= 0xd800 && c <= 0xdfff) {
      const pair = c <= 0xdbff && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      if (pair) {
        i++;
        continue;
      }
      esc = '\\ufffd'; // Go replaces invalid UTF-8 (a lone surrogate) with U+FFFD
    }
    if (esc !== undefined) {
      out += s.slice(from, i) + esc;
      from = i + 1;
    }
  }
  return out + s.slice(from) + '"';
}

function goNumber(n: number): string {
  // Go refuses NaN and infinities; monitoring must still answer, so they become 0.
  if (!Number.isFinite(n)) return '0';
  // Same thresholds as encoding/json: plain notation in [1e-6, 1e21), exponent outside.
  return String(n);
}

function encode(v: unknown, indent: string, step: string, out: string[]): boolean {
  switch (typeof v) {
    case 'string':
      out.push(goString(v));
      return true;
    case 'number':
      out.push(goNumber(v));
      return true;
    case 'bigint':
      out.push(v.toString());
      return true;
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return true;
    case 'undefined':
    case 'function':
    case 'symbol':
      return false;
  }
  if (v === null) {
    out.push('null');
    return true;
  }
  if (v instanceof Date) {
    out.push(goString(rfc3339Nano(v)));
    return true;
  }
  const inner = step === '' ? '' : indent + step;
  const nl = step === '' ? '' : '\n';
  const colon = step === '' ? ':' : ': ';
  if (Array.isArray(v)) {
    if (v.length === 0) {
      out.push('[]');
      return true;
    }
    out.push('[');
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out.push(',');
      out.push(nl, inner);
      if (!encode(v[i], inner, step, out)) out.push('null');
    }
    out.push(nl, indent, ']');
    return true;
  }
  // Go writes map keys sorted; struct fields (our plain objects) keep their declared order.
  const entries =
    v instanceof Map
      ? [...(v as Map<unknown, unknown>).entries()]
          .map(([k, val]): [string, unknown] => [String(k), val])
          .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      : Object.entries(v as object);
  let first = true;
  out.push('{');
  for (const [k, val] of entries) {
    const mark = out.length;
    out.push(first ? '' : ',', nl, inner, goString(k), colon);
    if (!encode(val, inner, step, out)) {
      out.length = mark; // undefined members are left out, as JSON.stringify does
      continue;
    }
    first = false;
  }
  if (first) {
    out.push('}');
  } else {
    out.push(nl, indent, '}');
  }
  return true;
}

/**
 * Serialise like Go's json.MarshalIndent(v, "", "  ") (pretty) or json.Marshal (compact):
 * insertion-ordered keys (a Map's keys sorted, as Go does), undefined members omitted, bigint written as an integer (uint64
 * values such as 18446744073709551615), Dates as RFC3339Nano, `<`, `>`, `&` escaped as
 * \u003c, \u003e, \u0026. No trailing newline.
 */
export function goJson(value: unknown, pretty = true): string {
  const out: string[] = [];
  if (!encode(value, '', pretty ? '  ' : '', out)) return 'null';
  return out.join('');
}
