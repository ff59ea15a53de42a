/**
 * /connz: open and recently closed client connections, filtered, sorted and paged the way
 * nats-server does it, in its ConnInfo field order.
 */
import type { Subscription } from '../core/subscription.js';
import type { EndpointResult } from './http-server.js';
import { goRtt, goUptime, rfc3339Nano } from './format.js';
import { boolParam, page, pageParams, QueryError, stringParam, uint64Param } from './query.js';
import type { ConnectionView, MonitorSource } from './source.js';

/** nats-edge has one account; nats-server's name for it. */
const GLOBAL_ACCOUNT = '$G';
const DEFAULT_LIMIT = 1024;

type State = 'open' | 'closed' | 'all';
type SubsMode = 'none' | 'list' | 'detail';

/** A connection with the values sorting needs, computed once. */
interface Row {
  readonly c: ConnectionView;
  readonly subs: readonly Subscription[];
  readonly uptimeMs: number;
  readonly idleMs: number;
}

/** `asc`: ascending (cid, start, uptime, reason); every other order is descending. */
const SORTS = new Map<string, { asc: boolean; key: (r: Row) => number | string }>(Object.entries({
  cid: { asc: true, key: (r: Row) => r.c.cid },
  // Start order is cid order (cids are handed out at accept), as nats-server treats it.
  start: { asc: true, key: (r: Row) => r.c.cid },
  subs: { asc: false, key: (r: Row) => r.subs.length },
  pending: { asc: false, key: (r: Row) => r.c.pendingBytes },
  msgs_to: { asc: false, key: (r: Row) => r.c.outMsgs },
  msgs_from: { asc: false, key: (r: Row) => r.c.inMsgs },
  bytes_to: { asc: false, key: (r: Row) => r.c.outBytes },
  bytes_from: { asc: false, key: (r: Row) => r.c.inBytes },
  last: { asc: false, key: (r: Row) => r.c.lastActivity.getTime() },
  idle: { asc: false, key: (r: Row) => r.idleMs },
  rtt: { asc: false, key: (r: Row) => r.c.rttMs ?? 0 },
  uptime: { asc: true, key: (r: Row) => r.uptimeMs },
  stop: { asc: false, key: (r: Row) => r.c.stop?.getTime() ?? 0 },
  reason: { asc: true, key: (r: Row) => r.c.reason ?? '' },
}));

function parseState(query: URLSearchParams): State {
  const s = stringParam(query, 'state');
  if (s === '') return 'open';
  switch (s.toLowerCase()) {
    case 'open':
      return 'open';
    case 'closed':
      return 'closed';
    case 'any':
    case 'all':
      return 'all';
  }
  throw new QueryError(`Error decoding state for ${s}`);
}

function parseSubs(query: URLSearchParams): SubsMode {
  if (stringParam(query, 'subs').toLowerCase() === 'detail') return 'detail';
  return boolParam(query, 'subs') ? 'list' : 'none';
}

function toRow(c: ConnectionView, now: number): Row {
  const end = c.stop !== undefined ? c.stop.getTime() : now;
  return {
    c,
    subs: c.subscriptions(),
    uptimeMs: end - c.start.getTime(),
    idleMs: end - c.lastActivity.getTime(),
  };
}

function subDetail(sub: Subscription, closed: boolean): Record<string, unknown> {
  return {
    // nats-server keeps the account only in the details it saved for closed connections.
    account: closed ? GLOBAL_ACCOUNT : undefined,
    subject: sub.subject,
    qgroup: sub.queue || undefined,
    sid: sub.sid,
    msgs: sub.msgs,
    max: sub.max > 0 ? sub.max : undefined,
    cid: sub.owner.cid,
  };
}

function connInfo(r: Row, auth: boolean, subs: SubsMode): Record<string, unknown> {
  const c = r.c;
  const closed = c.stop !== undefined;
  return {
    cid: c.cid,
    kind: 'Client',
    type: c.type,
    ip: c.ip,
    port: c.port,
    start: rfc3339Nano(c.start),
    last_activity: rfc3339Nano(c.lastActivity),
    stop: closed ? rfc3339Nano(c.stop) : undefined,
    reason: c.reason || undefined,
    rtt: goRtt(c.rttMs),
    uptime: goUptime(r.uptimeMs),
    idle: goUptime(r.idleMs),
    pending_bytes: c.pendingBytes,
    in_msgs: c.inMsgs,
    out_msgs: c.outMsgs,
    in_bytes: c.inBytes,
    out_bytes: c.outBytes,
    subscriptions: r.subs.length,
    name: c.name || undefined,
    lang: c.lang || undefined,
    version: c.version || undefined,
    tls_version: c.tlsVersion || undefined,
    tls_cipher_suite: c.tlsCipher || undefined,
    authorized_user: auth ? c.authorizedUser || undefined : undefined,
    // `account` is shown only for accounts other than $G, the only one nats-edge has.
    subscriptions_list: subs === 'list' && r.subs.length > 0 ? r.subs.map((s) => s.subject) : undefined,
    subscriptions_list_detail:
      subs === 'detail' && r.subs.length > 0 ? r.subs.map((s) => subDetail(s, closed)) : undefined,
    mqtt_client: c.mqttClient || undefined,
  };
}

function findByCid(items: Iterable<ConnectionView>, cid: number): ConnectionView | undefined {
  for (const c of items) if (c.cid === cid) return c;
  return undefined;
}

/**
 * Behaviour follows nats-server 2.9.10 (including `total` counting every connection in the
 * requested state, whatever the user filter, and `limit` forced to 1 with `cid`), with the
 * three fixes of later releases: `sort=rtt`, `sort=idle` by time since last activity, and
 * `cid` with `state=all` finding open connections too.
 */
export function connz(source: MonitorSource, query: URLSearchParams, now: Date = new Date()): EndpointResult {
  const sortName = stringParam(query, 'sort');
  const auth = boolParam(query, 'auth');
  const subs = parseSubs(query);
  const paging = pageParams(query, DEFAULT_LIMIT);
  const cid = uint64Param(query, 'cid');
  const state = parseState(query);
  const user = stringParam(query, 'user');
  const acc = stringParam(query, 'acc');
  const mqttClient = stringParam(query, 'mqtt_client');

  const sort = SORTS.get(sortName === '' ? 'cid' : sortName);
  if (sort === undefined) throw new QueryError(`invalid sorting option: ${sortName}`);
  if ((sortName === 'stop' || sortName === 'reason') && state !== 'closed') {
    throw new QueryError(`sort by ${sortName} only valid on closed connections`);
  }
  const { offset } = paging;
  const limit = cid > 0 ? 1 : paging.limit;

  const open = state === 'closed' ? [] : [...source.openConnections()];
  const closed = state === 'open' ? [] : [...source.closedConnections()];
  const total = open.length + closed.length;

  let selected: ConnectionView[];
  if (acc !== '' && acc !== GLOBAL_ACCOUNT) {
    selected = [];
  } else if (cid > 0) {
    const found = findByCid(open, cid) ?? findByCid(closed, cid);
    selected = found !== undefined ? [found] : [];
  } else {
    selected = [];
    for (const list of [open, closed]) {
      for (const c of list) {
        if (user !== '' && c.authorizedUser !== user) continue;
        if (mqttClient !== '' && c.mqttClient !== mqttClient) continue;
        selected.push(c);
      }
    }
  }

  const nowMs = now.getTime();
  // Rows start in cid order so that equal sort keys stay in cid order (the sort is stable).
  const rows = selected.map((c) => toRow(c, nowMs)).sort((a, b) => a.c.cid - b.c.cid);
  if (sortName !== '' && sortName !== 'cid' && sortName !== 'start') {
    const { asc, key } = sort;
    rows.sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      const cmp = ka < kb ? -1 : ka > kb ? 1 : 0;
      return asc ? cmp : -cmp;
    });
  }

  const connections = page(rows, offset, limit).map((r) => connInfo(r, auth, subs));
  return {
    status: 200,
    body: {
      server_id: source.serverId,
      now: rfc3339Nano(now),
      num_connections: connections.length,
      total: acc !== '' && acc !== GLOBAL_ACCOUNT ? 0 : total,
      offset,
      limit,
      connections,
    },
  };
}
