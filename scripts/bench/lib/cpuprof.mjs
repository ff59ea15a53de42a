// Reads a V8 .cpuprofile (node --cpu-prof) and ranks functions by self time.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SourceMap } from 'node:module';

/** The newest *.cpuprofile in `dir` written after `sinceMs` (epoch ms), or null. */
export function newestProfile(dir, sinceMs = 0) {
  let best = null;
  let bestTime = sinceMs;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.cpuprofile')) continue;
    const t = statSync(join(dir, name)).mtimeMs;
    if (t >= bestTime) {
      best = join(dir, name);
      bestTime = t;
    }
  }
  return best;
}

const maps = new Map();

/** The bundle's source map (esbuild, linked `.map` beside it), or null. */
function sourceMapFor(url) {
  if (maps.has(url)) return maps.get(url);
  let map = null;
  try {
    const path = url.startsWith('file:') ? fileURLToPath(url) : url;
    const payload = JSON.parse(readFileSync(`${path}.map`, 'utf8'));
    map = { sm: new SourceMap(payload), payload };
  } catch {
    map = null;
  }
  maps.set(url, map);
  return map;
}

/** `name src/file.ts:line` for a call frame, through the bundle's source map when there is one. */
function frameKey(cf) {
  const name = cf.functionName || '(anonymous)';
  if (!cf.url) return name;
  const map = cf.url.endsWith('.js') ? sourceMapFor(cf.url) : null;
  if (map !== null && cf.lineNumber >= 0) {
    const e = map.sm.findEntry(cf.lineNumber, cf.columnNumber);
    if (e && e.originalSource) {
      const src = e.originalSource.replace(/^.*?\/(src|node_modules)\//, '$1/');
      const minified = cf.functionName.length <= 2;
      const original = (minified ? originalName(map.payload, e) : undefined) ?? (minified ? e.name : undefined) ?? name;
      return `${original} ${src}:${e.originalLine + 1}`;
    }
  }
  return `${name} ${cf.url.replace(/^.*\//, '')}:${cf.lineNumber + 1}:${cf.columnNumber + 1}`;
}

/** A readable name from the original source line when the map carries no name there. */
function originalName(payload, e) {
  const i = payload.sources.indexOf(e.originalSource);
  const text = i >= 0 ? payload.sourcesContent?.[i] : undefined;
  if (text === undefined || text === null) return undefined;
  const line = text.split('\n')[e.originalLine] ?? '';
  const cls = /\bclass\s+([A-Za-z_$][\w$]*)/.exec(line);
  if (cls) return `${cls[1]} (constructor)`;
  const m = /([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\s*\(/.exec(line.slice(e.originalColumn)) ?? /([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\s*\(/.exec(line);
  return m ? m[1] : undefined;
}

/**
 * Self time per function (callFrame functionName + url:line), summed over all nodes of the
 * profile. Sample time deltas give the time of each sample; a node's self time is the sum
 * over the samples that landed on it.
 */
export function selfTimes(file) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const selfUs = new Map();
  const { samples, timeDeltas } = prof;
  for (let i = 0; i < samples.length; i++) selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + (timeDeltas[i] ?? 0));
  const byFn = new Map();
  let total = 0;
  for (const node of prof.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    total += us;
    const key = frameKey(node.callFrame);
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
  // Shares are of the time the process was busy: (idle) is waiting for I/O, not a cost.
  const idle = byFn.get('(idle)') ?? 0;
  byFn.delete('(idle)');
  const busy = total - idle;
  const rows = [...byFn.entries()]
    .map(([fn, us]) => ({ fn, ms: us / 1000, share: busy > 0 ? us / busy : 0 }))
    .sort((a, b) => b.ms - a.ms);
  return { file, totalMs: total / 1000, idleMs: idle / 1000, busyMs: busy / 1000, rows };
}
