/**
 * The console page: one HTML document with its CSS and script inline and no URL outside the
 * gateway (gateways are often offline). It is a skeleton: every live value is filled by the
 * script from `events`, a URL relative to the page, so http_base_path and proxies work.
 * Live values carry a data-testid and, when numeric, the raw number in data-value.
 */
import type { IndexLink } from '../http-server.js';
import { formatBytes, formatCount, formatDuration, formatShort } from './format.js';
import { PAGE_SCRIPT } from './page-script.js';
import { PAGE_STYLE } from './page-style.js';

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The formatters of format.ts, as the page's script uses them (same text, so same output). */
const FORMATTERS = [
  `var formatCount = (${formatCount.toString()});`,
  `var formatShort = (${formatShort.toString()});`,
  `var formatBytes = (${formatBytes.toString()});`,
  `var formatDuration = (${formatDuration.toString()});`,
].join('\n');

/** The whole script: the formatters and the page's code in one scope. */
export const CONSOLE_SCRIPT = `(function () {\n'use strict';\n${FORMATTERS}\n${PAGE_SCRIPT}\n})();`;

const BODY = String.raw`
<header>
<h1 data-testid="server-name">nats-edge</h1>
<div class="meta">nats-edge <b data-testid="version">-</b> &middot; profile <b data-testid="profile">-</b> &middot; up <b data-testid="uptime" data-value="">-</b></div>
<span class="badge" data-testid="live" data-value="stale">connecting</span>
</header>
<main>
<section class="wide"><h2>Problems</h2><div data-testid="problems"><p class="none">No problems</p></div></section>

<section class="wide"><h2>Traffic</h2>
<div class="tiles">
<div class="tile"><span class="k">In</span><b data-testid="rate-in-msgs" data-value="0">0</b> <small>msgs/s</small></div>
<div class="tile"><span class="k">Out</span><b data-testid="rate-out-msgs" data-value="0">0</b> <small>msgs/s</small></div>
<div class="tile"><span class="k">In</span><b data-testid="rate-in-bytes" data-value="0">0 B</b><small>/s</small></div>
<div class="tile"><span class="k">Out</span><b data-testid="rate-out-bytes" data-value="0">0 B</b><small>/s</small></div>
</div>
<div class="plot"><svg class="chart" data-testid="rate-chart" viewBox="0 0 600 130" preserveAspectRatio="none" role="img" aria-label="messages per second in and out, last 5 minutes">
<path class="grid" d="M0 10H600M0 70H600M0 129H600"/>
<path class="in" data-line="in" d=""/><path class="out" data-line="out" d=""/>
</svg><span class="ax top" data-axis="rate-chart">0</span><span class="ax left">5 min ago</span><span class="ax right">now</span></div>
<div class="legend"><span><i style="background:var(--in)"></i>msgs/s in</span><span><i style="background:var(--out)"></i>msgs/s out</span></div>
<div class="plot"><svg class="chart" data-testid="rate-chart-bytes" viewBox="0 0 600 130" preserveAspectRatio="none" role="img" aria-label="bytes per second in and out, last 5 minutes">
<path class="grid" d="M0 10H600M0 70H600M0 129H600"/>
<path class="in" data-line="in" d=""/><path class="out" data-line="out" d=""/>
</svg><span class="ax top" data-axis="rate-chart-bytes">0</span><span class="ax left">5 min ago</span><span class="ax right">now</span></div>
<div class="legend"><span><i style="background:var(--in)"></i>bytes/s in</span><span><i style="background:var(--out)"></i>bytes/s out</span></div>
</section>

<section><h2>Connections</h2>
<div class="tiles">
<div class="tile"><span class="k">NATS</span><b data-testid="conn-nats" data-value="0">0</b></div>
<div class="tile"><span class="k">MQTT</span><b data-testid="conn-mqtt" data-value="0">0</b></div>
<div class="tile"><span class="k">WebSocket</span><b data-testid="conn-websocket" data-value="0">0</b></div>
<div class="tile"><span class="k">Leaf</span><b data-testid="conn-leaf" data-value="0">0</b></div>
</div>
<div class="scroll"><table data-testid="talkers"><thead><tr><th>Kind</th><th>Name</th><th class="addr">Address</th><th class="n">Msgs in</th><th class="n">Msgs out</th><th class="n">Bytes</th></tr></thead><tbody></tbody></table></div>
</section>

<section><h2>Memory</h2>
<dl class="kv">
<dt>RSS</dt><dd><span data-testid="mem-rss" data-value="">-</span><div class="bar"><i data-bar="rss"></i></div></dd>
<dt>RSS ceiling</dt><dd data-testid="mem-ceiling" data-value="">-</dd>
<dt>Heap</dt><dd data-testid="mem-heap" data-value="">-</dd>
<dt>Budget</dt><dd data-testid="mem-budget" data-value="">-</dd>
<dt>Queued to clients</dt><dd><span data-testid="mem-pending" data-value="">-</span> of <span data-pending-limit>-</span><div class="bar"><i data-bar="pending"></i></div></dd>
<dt>Slow consumers cut</dt><dd data-testid="slow-consumers" data-value="">-</dd>
</dl>
</section>

<section><h2>JetStream</h2>
<p class="off" data-off="js" hidden>JetStream is off</p>
<div data-on="js">
<dl class="kv">
<dt>Streams</dt><dd data-testid="js-streams" data-value="">-</dd>
<dt>Store</dt><dd><span data-testid="js-store" data-value="">-</span> of <span data-testid="js-store-max" data-value="">-</span><div class="bar"><i data-bar="store"></i></div></dd>
<dt>Disk</dt><dd><span data-testid="js-disk-free" data-value="">-</span> free of <span data-testid="js-disk-size" data-value="">-</span><div class="bar"><i data-bar="disk"></i></div></dd>
</dl>
<div class="scroll"><table data-testid="streams"><thead><tr><th>Stream</th><th class="n">Msgs</th><th class="n">Bytes</th><th class="n">Max bytes</th><th class="n">Consumers</th></tr></thead><tbody></tbody></table></div>
</div>
</section>

<section><h2>MQTT</h2>
<p class="off" data-off="mqtt" hidden>MQTT is off</p>
<dl class="kv" data-on="mqtt">
<dt>Clients connected</dt><dd data-testid="mqtt-clients" data-value="">-</dd>
<dt>Sessions</dt><dd data-testid="mqtt-sessions" data-value="">-</dd>
<dt>Retained messages</dt><dd data-testid="mqtt-retained" data-value="">-</dd>
</dl>
</section>

<section class="wide"><h2>Uplinks</h2><div data-testid="uplinks"><p class="off">No uplink configured</p></div></section>
</main>
`;

/** The page, with the endpoint links in its footer (see IndexRenderer for `baseHref`). */
export function consolePage(links: readonly IndexLink[], baseHref: string): string {
  const base = baseHref === '' ? '' : `<base href="${escapeHtml(baseHref)}">\n`;
  const footer = links.map((l) => `<a href="${escapeHtml(l.path)}">${escapeHtml(l.label)}</a>`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nats-edge console</title>
<link rel="icon" href="data:,">
${base}<style>${PAGE_STYLE}</style>
</head>
<body class="stale">${BODY}<footer>${footer}</footer>
<script>
${CONSOLE_SCRIPT}
</script>
</body>
</html>
`;
}
