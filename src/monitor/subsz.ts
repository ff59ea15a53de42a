/**
 * /subsz (alias /subscriptionsz): subject index statistics, and with `subs=1` the
 * subscriptions themselves, optionally only those a publish on `test` would reach.
 */
import { isValidLiteralSubject } from '../core/subject.js';
import type { SublistStats } from '../core/sublist.js';
import type { Subscription } from '../core/subscription.js';
import type { EndpointResult } from './http-server.js';
import { rfc3339Nano } from './format.js';
import { boolParam, page, pageParams, QueryError, stringParam } from './query.js';
import type { MonitorSource } from './source.js';

const GLOBAL_ACCOUNT = '$G';
const DEFAULT_LIMIT = 1024;

function statsBody(st: SublistStats): Record<string, unknown> {
  return {
    num_subscriptions: st.numSubscriptions,
    num_cache: st.numCache,
    num_inserts: st.numInserts,
    num_removes: st.numRemoves,
    num_matches: st.numMatches,
    cache_hit_rate: st.cacheHitRate,
    max_fanout: st.maxFanout,
    avg_fanout: st.avgFanout,
  };
}

const NO_STATS: SublistStats = {
  numSubscriptions: 0,
  numCache: 0,
  numInserts: 0,
  numRemoves: 0,
  numMatches: 0,
  cacheHitRate: 0,
  maxFanout: 0,
  avgFanout: 0,
};

function detail(sub: Subscription): Record<string, unknown> {
  return {
    account: GLOBAL_ACCOUNT,
    subject: sub.subject,
    qgroup: sub.queue || undefined,
    sid: sub.sid,
    msgs: sub.msgs,
    max: sub.max > 0 ? sub.max : undefined,
    cid: sub.owner.cid,
  };
}

/**
 * As nats-server 2.9.10, the answer is the statistics alone (no server_id, now, paging)
 * whenever the requested page holds no subscription. `total` counts every subscription
 * selected (2.9.10 put the page length there; later releases count them all).
 */
export function subsz(source: MonitorSource, query: URLSearchParams, now: Date = new Date()): EndpointResult {
  const listSubs = boolParam(query, 'subs');
  const { offset, limit } = pageParams(query, DEFAULT_LIMIT);
  const test = stringParam(query, 'test');
  const acc = stringParam(query, 'acc');
  if (test !== '' && !isValidLiteralSubject(test)) {
    throw new QueryError(`invalid test subject, must be valid publish subject: ${test}`);
  }
  // nats-edge has the one account; another name selects nothing.
  const known = acc === '' || acc === GLOBAL_ACCOUNT;
  const index = source.subjectIndex();
  // Read before match(), which counts in the statistics.
  const stats = known ? index.stats() : NO_STATS;
  if (!listSubs || !known) return { status: 200, body: statsBody(stats) };

  let subs: Subscription[];
  if (test !== '') {
    const m = index.match(test);
    subs = [...m.plain];
    for (const group of m.queues) subs.push(...group);
  } else {
    subs = [...index.all()];
  }
  const list = page(subs, offset, limit);
  if (list.length === 0) return { status: 200, body: statsBody(stats) };
  return {
    status: 200,
    body: {
      server_id: source.serverId,
      now: rfc3339Nano(now),
      ...statsBody(stats),
      total: subs.length,
      offset,
      limit,
      subscriptions_list: list.map(detail),
    },
  };
}
