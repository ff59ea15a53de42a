// Small statistics and formatting helpers for the benchmark tables.

/** Median of the finite numbers in `xs`; NaN when there are none. */
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Nearest-rank percentile (p in 0..100) of an ascending-sorted array-like.
 * Nearest rank, not interpolation, so p99 is always a latency that was really observed.
 */
export function percentileSorted(sorted, p) {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
  return sorted[rank - 1];
}

/** p50/p90/p99/p99.9/max/mean of a Float64Array of samples (sorted in place). */
export function latencySummary(samples) {
  samples.sort();
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i];
  return {
    n: samples.length,
    mean: samples.length > 0 ? sum / samples.length : NaN,
    p50: percentileSorted(samples, 50),
    p90: percentileSorted(samples, 90),
    p99: percentileSorted(samples, 99),
    p999: percentileSorted(samples, 99.9),
    max: samples.length > 0 ? samples[samples.length - 1] : NaN,
  };
}

export function fmtInt(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a';
}

export function fmtFixed(x, digits = 1) {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

export function fmtMB(bytes) {
  return Number.isFinite(bytes) ? `${(bytes / (1024 * 1024)).toFixed(1)} MB` : 'n/a';
}

/** Plain-text table with aligned columns; numbers and ratios right-aligned. */
export function textTable(header, rows) {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length)));
  const line = (r) =>
    r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The same table as GitHub markdown. */
export function markdownTable(header, rows) {
  const esc = (s) => String(s).replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, c) => (c === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
