/**
 * /leafz: the leafnode links this server dialed, in nats-server's shape (2.10/2.11 field
 * names; nats-edge is always the spoke), plus nats-edge's own view of every configured
 * remote, connected or not, with its store-and-forward queue.
 */
import type { LeafLinkView } from '../leaf/types.js';
import type { EndpointResult } from './http-server.js';
import { goRtt, rfc3339Nano } from './format.js';
import { boolParam, stringParam } from './query.js';

/** What /leafz reads: the server's id and a snapshot of every configured remote. */
export interface LeafzSource {
  serverId: string;
  leafLinks(): readonly LeafLinkView[];
}

/** `scheme://` followed by an authority that carries userinfo. */
const URL_USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/?#]*@/g;

/**
 * The URL without userinfo. The views already strip it; monitoring output is public enough
 * that a password slipping through a future change must still not reach it.
 */
export function withoutUserinfo(url: string): string {
  if (!url.includes('@')) return url;
  const scheme = url.indexOf('://');
  const from = scheme < 0 ? 0 : scheme + 3;
  let end = url.length;
  for (const sep of ['/', '?', '#']) {
    const i = url.indexOf(sep, from);
    if (i >= 0 && i < end) end = i;
  }
  const at = url.lastIndexOf('@', end - 1);
  if (at < from) return url;
  return url.slice(0, from) + url.slice(at + 1);
}

/** Error texts may quote a URL (a dial error, say); take userinfo out of any of them. */
function scrubText(text: string): string {
  return text.includes('@') ? text.replace(URL_USERINFO, '$1') : text;
}

/** The subject of a "subject queue" entry: nats-server lists subjects only. */
function subjectOf(entry: string): string {
  const sp = entry.indexOf(' ');
  return sp < 0 ? entry : entry.slice(0, sp);
}

function bufferInfo(b: NonNullable<LeafLinkView['buffer']>, nowMs: number): Record<string, unknown> {
  const empty = b.msgs === 0 || b.oldestTs <= 0;
  return {
    msgs: b.msgs,
    bytes: b.bytes,
    oldest: empty ? undefined : rfc3339Nano(new Date(b.oldestTs)),
    oldest_age_ms: empty ? 0 : Math.max(0, nowMs - b.oldestTs),
    dropped_msgs: b.droppedMsgs,
    dropped_bytes: b.droppedBytes,
    appended: b.appended,
    replaying: b.replaying,
    replayed: b.replayed,
  };
}

/** nats-edge's view of one remote: the `edge` member of a leaf and an `edge_remotes` entry. */
function remoteInfo(v: LeafLinkView, nowMs: number): Record<string, unknown> {
  return {
    url: withoutUserinfo(v.url),
    state: v.state,
    since: rfc3339Nano(v.since),
    connects: v.connects,
    last_error: scrubText(v.lastError),
    remote_account: v.remoteAccount || undefined,
    buffer: v.buffer !== undefined ? bufferInfo(v.buffer, nowMs) : undefined,
  };
}

function leafInfo(v: LeafLinkView, listSubs: boolean, nowMs: number): Record<string, unknown> {
  const subs = v.subscriptions();
  return {
    name: v.name,
    is_spoke: true,
    account: v.account,
    ip: v.ip,
    port: v.port,
    rtt: goRtt(v.rttMs),
    in_msgs: v.inMsgs,
    out_msgs: v.outMsgs,
    in_bytes: v.inBytes,
    out_bytes: v.outBytes,
    subscriptions: subs.length,
    // One entry per subscription, as nats-server lists them (a subject may repeat).
    subscriptions_list: listSubs && subs.length > 0 ? subs.map(subjectOf) : undefined,
    compression: 'off',
    edge: remoteInfo(v, nowMs),
  };
}

/**
 * `leafs` is null when no link qualifies, as nats-server writes it. `acc` filters both the
 * links and `edge_remotes`; `subs` is parsed as nats-server parses it (a bad value is a 400).
 */
export function leafz(source: LeafzSource, query: URLSearchParams, now: Date = new Date()): EndpointResult {
  const listSubs = boolParam(query, 'subs');
  const acc = stringParam(query, 'acc');
  const nowMs = now.getTime();
  const selected = source.leafLinks().filter((v) => acc === '' || v.account === acc);
  const leafs = selected.filter((v) => v.state === 'connected').map((v) => leafInfo(v, listSubs, nowMs));
  return {
    status: 200,
    body: {
      server_id: source.serverId,
      now: rfc3339Nano(now),
      leafnodes: leafs.length,
      leafs: leafs.length > 0 ? leafs : null,
      edge_remotes: selected.map((v) => remoteInfo(v, nowMs)),
    },
  };
}
