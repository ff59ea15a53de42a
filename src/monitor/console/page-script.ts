/**
 * The console page's script (plain browser JavaScript, sent as text): it listens to `events`,
 * merges the per-second rate history, draws the two rolling charts into the page's own SVG
 * paths and fills every data-testid element. formatCount/formatShort/formatBytes/formatDuration
 * come from format.ts (page.ts puts them in the same scope). Server strings only ever go
 * through textContent and setAttribute, never into markup.
 * The text must hold no backquote, no dollar-brace and no double slash (it sits in a template
 * literal, and the page promises no URL of any kind); the console tests check it.
 */
export const PAGE_SCRIPT = String.raw`
var SAMPLES = 300;
var KEYS = ['inMsgs', 'outMsgs', 'inBytes', 'outBytes'];
var H = { end: -1, inMsgs: [], outMsgs: [], inBytes: [], outBytes: [] };
var resetHistory = true;
var lastAt = 0;
var lastProblems = null;
var streamRows = {};
var uplinkBoxes = {};

function q(id, root) { return (root || document).querySelector('[data-testid="' + id + '"]'); }
function attr(name, value, root) { return (root || document).querySelector('[' + name + '="' + value + '"]'); }

function put(el, value, text) {
  if (!el) return;
  var v = value === null || value === undefined ? '' : String(value);
  if (el.getAttribute('data-value') !== v) el.setAttribute('data-value', v);
  if (el.textContent !== text) el.textContent = text;
}
function text(el, t) { if (el && el.textContent !== t) el.textContent = t; }
function count(id, v, root) { put(q(id, root), v, formatCount(v)); }
function bytes(id, v, root) { put(q(id, root), v, formatBytes(v)); }
function orNone(v, f, none) { return v === null || v === undefined || v < 0 ? none : f(v); }

function bar(name, part, whole) {
  var el = attr('data-bar', name);
  if (!el) return;
  var pct = whole > 0 ? Math.min(100, (part * 100) / whole) : 0;
  el.style.width = pct.toFixed(1) + '%';
  el.className = pct >= 95 ? 'bad' : pct >= 85 ? 'warn' : '';
}

function shown(name, on) {
  var off = attr('data-off', name);
  var body = attr('data-on', name);
  if (off) off.hidden = on;
  if (body) body.hidden = !on;
}

/* ---- rate history: merged by sample number; a new stream or a restarted server starts over ---- */
function merge(h) {
  var n = h.inMsgs.length;
  var first = h.end - n + 1;
  var k, s;
  if (resetHistory || h.end < H.end) {
    H = { end: h.end, inMsgs: h.inMsgs.slice(), outMsgs: h.outMsgs.slice(), inBytes: h.inBytes.slice(), outBytes: h.outBytes.slice() };
    resetHistory = false;
    return;
  }
  for (s = H.end + 1; s <= h.end; s++) {
    for (k = 0; k < KEYS.length; k++) H[KEYS[k]].push(s >= first ? h[KEYS[k]][s - first] : null);
  }
  if (h.end > H.end) H.end = h.end;
  for (k = 0; k < KEYS.length; k++) {
    var a = H[KEYS[k]];
    if (a.length > SAMPLES) a.splice(0, a.length - SAMPLES);
  }
}

function niceMax(v) {
  if (v <= 1) return 1;
  var p = Math.pow(10, Math.floor(Math.log10(v)));
  var m = v / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function line(values, max) {
  var d = '';
  var pen = false;
  var n = values.length;
  for (var i = 0; i < n; i++) {
    var v = values[i];
    if (v === null || v === undefined) { pen = false; continue; }
    var x = 600 - (n - 1 - i) * (600 / (SAMPLES - 1));
    var y = 129 - (Math.max(0, v) / max) * 119;
    d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
    pen = true;
  }
  return d;
}

function chart(id, a, b, fmt) {
  var svg = q(id);
  if (!svg) return;
  var top = 0;
  var i;
  for (i = 0; i < a.length; i++) if (a[i] > top) top = a[i];
  for (i = 0; i < b.length; i++) if (b[i] > top) top = b[i];
  var max = niceMax(top);
  attr('data-line', 'in', svg).setAttribute('d', line(a, max));
  attr('data-line', 'out', svg).setAttribute('d', line(b, max));
  text(attr('data-axis', id), fmt(max) + '/s');
}

/* ---- sections ---- */
function problems(list) {
  var key = list.join('\n');
  if (key === lastProblems) return;
  lastProblems = key;
  var box = q('problems');
  box.textContent = '';
  if (list.length === 0) {
    var ok = document.createElement('p');
    ok.className = 'none';
    ok.textContent = 'No problems';
    box.appendChild(ok);
    return;
  }
  for (var i = 0; i < list.length; i++) {
    var p = document.createElement('p');
    p.className = 'problem';
    p.setAttribute('data-testid', 'problem');
    p.textContent = list[i];
    box.appendChild(p);
  }
}

function td(tr, value, t, id, numeric) {
  var c = document.createElement('td');
  if (numeric) c.className = 'n';
  if (id) c.setAttribute('data-testid', id);
  put(c, value, t);
  tr.appendChild(c);
  return c;
}

function talkers(list) {
  var body = q('talkers').tBodies[0];
  body.textContent = '';
  for (var i = 0; i < list.length; i++) {
    var t = list[i];
    var tr = document.createElement('tr');
    tr.setAttribute('data-testid', 'talker');
    tr.setAttribute('data-kind', t.kind);
    td(tr, t.kind, t.kind, 'talker-kind');
    td(tr, t.name, t.name || '-', 'talker-name');
    td(tr, t.address, t.address || '-', 'talker-address');
    td(tr, t.inMsgs, formatCount(t.inMsgs), 'talker-in-msgs', true);
    td(tr, t.outMsgs, formatCount(t.outMsgs), 'talker-out-msgs', true);
    td(tr, t.inBytes + t.outBytes, formatBytes(t.inBytes + t.outBytes), 'talker-bytes', true);
    body.appendChild(tr);
  }
}

function streams(list) {
  var body = q('streams').tBodies[0];
  var seen = {};
  var sorted = list.slice().sort(function (a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; });
  for (var i = 0; i < sorted.length; i++) {
    var s = sorted[i];
    seen[s.name] = true;
    var tr = streamRows[s.name];
    if (!tr) {
      tr = document.createElement('tr');
      tr.setAttribute('data-testid', 'stream');
      tr.setAttribute('data-name', s.name);
      var name = document.createElement('td');
      name.textContent = s.name;
      tr.appendChild(name);
      td(tr, '', '', 'stream-msgs', true);
      td(tr, '', '', 'stream-bytes', true);
      td(tr, '', '', 'stream-max-bytes', true);
      td(tr, '', '', 'stream-consumers', true);
      streamRows[s.name] = tr;
    }
    count('stream-msgs', s.messages, tr);
    bytes('stream-bytes', s.bytes, tr);
    put(q('stream-max-bytes', tr), s.maxBytes, orNone(s.maxBytes, formatBytes, 'unlimited'));
    count('stream-consumers', s.consumers, tr);
    body.appendChild(tr);
  }
  for (var n in streamRows) {
    if (!seen[n]) { streamRows[n].remove(); delete streamRows[n]; }
  }
}

var UPLINK_HTML =
  '<div><span class="name" data-url></span> <span class="state" data-testid="uplink-state"></span> <span class="meta" data-hub></span></div>' +
  '<dl class="kv">' +
  '<dt>Since last change</dt><dd data-testid="uplink-since"></dd>' +
  '<dt>RTT</dt><dd data-testid="uplink-rtt"></dd>' +
  '<dt>Backlog</dt><dd><span data-testid="uplink-backlog-msgs"></span> msgs, <span data-testid="uplink-backlog-bytes"></span>, oldest <span data-testid="uplink-backlog-oldest"></span></dd>' +
  '<dt>Replay</dt><dd data-testid="uplink-replay"></dd>' +
  '<dt>Dropped</dt><dd data-testid="uplink-dropped"></dd>' +
  '</dl><div class="err" data-err></div>';

function replayText(b) {
  if (!b) return 'no buffer';
  var p = b.progress;
  if (p) {
    var left = p.secondsLeft >= 0 ? formatDuration(p.secondsLeft * 1000) + ' left' : 'time left unknown';
    return 'replaying ' + formatCount(p.done) + ' of ' + formatCount(p.total) + ', ' + formatShort(p.ratePerSec) + '/s, ' + left;
  }
  return b.replaying ? 'replaying' : 'idle';
}

function uplinks(list) {
  var box = q('uplinks');
  if (list.length === 0) {
    if (!box.querySelector('.off')) {
      box.textContent = '';
      var p = document.createElement('p');
      p.className = 'off';
      p.textContent = 'No uplink configured';
      box.appendChild(p);
    }
    uplinkBoxes = {};
    return;
  }
  var off = box.querySelector('.off');
  if (off) off.remove();
  var seen = {};
  for (var i = 0; i < list.length; i++) {
    var u = list[i];
    seen[u.url] = true;
    var el = uplinkBoxes[u.url];
    if (!el) {
      el = document.createElement('div');
      el.className = 'uplink';
      el.setAttribute('data-testid', 'uplink');
      el.setAttribute('data-name', u.url);
      el.innerHTML = UPLINK_HTML;
      text(el.querySelector('[data-url]'), u.url);
      uplinkBoxes[u.url] = el;
      box.appendChild(el);
    }
    put(q('uplink-state', el), u.state, u.state);
    text(el.querySelector('[data-hub]'), u.hub ? 'hub server: ' + u.hub : '');
    put(q('uplink-since', el), u.sinceMs, (u.state === 'up' ? 'up for ' : u.state === 'down' ? 'down for ' : 'trying for ') + formatDuration(u.sinceMs));
    put(q('uplink-rtt', el), u.rttMs, u.rttMs >= 0 ? (u.rttMs < 10 ? u.rttMs.toFixed(1) : Math.round(u.rttMs)) + ' ms' : '-');
    var b = u.buffer;
    count('uplink-backlog-msgs', b ? b.msgs : 0, el);
    bytes('uplink-backlog-bytes', b ? b.bytes : 0, el);
    put(q('uplink-backlog-oldest', el), b ? b.oldestAgeMs : -1, b && b.oldestAgeMs >= 0 ? formatDuration(b.oldestAgeMs) : '-');
    put(q('uplink-replay', el), b ? b.replayed : 0, replayText(b));
    count('uplink-dropped', b ? b.droppedMsgs : 0, el);
    text(el.querySelector('[data-err]'), u.state !== 'up' && u.lastError ? 'Last error: ' + u.lastError : '');
  }
  for (var url in uplinkBoxes) {
    if (!seen[url]) { uplinkBoxes[url].remove(); delete uplinkBoxes[url]; }
  }
}

function render(s) {
  var srv = s.server;
  text(q('server-name'), srv.name);
  document.title = srv.name + ' - nats-edge';
  text(q('version'), srv.edgeVersion);
  q('version').title = 'speaks nats-server ' + srv.version;
  text(q('profile'), srv.profile || 'none');
  put(q('uptime'), srv.uptimeSeconds, formatDuration(srv.uptimeSeconds * 1000));

  problems(s.problems);

  var r = s.traffic.rate;
  put(q('rate-in-msgs'), r.inMsgs, formatShort(r.inMsgs));
  put(q('rate-out-msgs'), r.outMsgs, formatShort(r.outMsgs));
  put(q('rate-in-bytes'), r.inBytes, formatBytes(r.inBytes));
  put(q('rate-out-bytes'), r.outBytes, formatBytes(r.outBytes));
  merge(s.traffic.history);
  chart('rate-chart', H.inMsgs, H.outMsgs, formatShort);
  chart('rate-chart-bytes', H.inBytes, H.outBytes, formatBytes);

  var c = s.connections;
  count('conn-nats', c.nats);
  count('conn-mqtt', c.mqtt);
  count('conn-websocket', c.websocket);
  count('conn-leaf', c.leaf);
  talkers(s.talkers);

  var m = s.memory;
  bytes('mem-rss', m.rss);
  put(q('mem-ceiling'), m.ceiling, orNone(m.ceiling, formatBytes, 'none'));
  bar('rss', m.rss, m.ceiling || 0);
  bytes('mem-heap', m.heapUsed);
  put(q('mem-budget'), m.budget, orNone(m.budget, formatBytes, 'none'));
  bytes('mem-pending', m.pending);
  text(attr('data-pending-limit', ''), formatBytes(m.pendingLimit));
  bar('pending', m.pending, m.pendingLimit);
  put(q('slow-consumers'), m.slowConsumers, formatCount(m.slowConsumers) + (m.slowConsumersRecent > 0 ? ' (' + formatCount(m.slowConsumersRecent) + ' recently)' : ''));

  var js = s.jetstream;
  shown('js', js !== null);
  if (js) {
    count('js-streams', js.streams);
    bytes('js-store', js.store);
    var d = js.disk;
    /* A cap larger than the disk (the 1 TiB default on an SD card) is not the limit that bites. */
    var overDisk = d && js.storeMax > 0 && js.storeMax > js.store + d.free;
    put(q('js-store-max'), js.storeMax, orNone(js.storeMax, formatBytes, 'unlimited') + (overDisk ? ' (more than the disk has free)' : ''));
    bar('store', js.store, js.storeMax);
    put(q('js-disk-free'), d ? d.free : '', d ? formatBytes(d.free) : 'unknown');
    put(q('js-disk-size'), d ? d.size : '', d ? formatBytes(d.size) : 'unknown');
    bar('disk', d ? d.size - d.free : 0, d ? d.size : 0);
    streams(js.list);
  }

  var mq = s.mqtt;
  shown('mqtt', mq !== null);
  if (mq) {
    count('mqtt-clients', mq.clients);
    count('mqtt-sessions', mq.sessions);
    count('mqtt-retained', mq.retained);
  }

  uplinks(s.uplinks);
}

/* ---- the event stream and the live badge ---- */
var badge = q('live');
function setLive(state, label) {
  if (badge.getAttribute('data-value') !== state) badge.setAttribute('data-value', state);
  text(badge, label);
  document.body.className = state === 'live' ? '' : 'stale';
}

var es = null;
function connect() {
  es = new EventSource('events');
  es.onopen = function () { resetHistory = true; };
  es.onmessage = function (ev) {
    var s;
    try { s = JSON.parse(ev.data); } catch (e) { return; }
    lastAt = Date.now();
    setLive('live', 'live');
    render(s);
  };
  es.onerror = function () {
    setLive('stale', 'disconnected');
    if (es.readyState === 2) {
      es.close();
      setTimeout(connect, 3000);
    }
  };
}
setInterval(function () {
  if (lastAt > 0 && Date.now() - lastAt > 3500 && badge.getAttribute('data-value') === 'live') setLive('stale', 'stale');
}, 1000);
connect();
`;
