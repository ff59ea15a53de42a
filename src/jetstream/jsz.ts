/**
 * JetStream on the monitoring port: /jsz in nats-server's shape (config-and-monitoring.md §5.8)
 * and the `jetstream` block of /varz (config and live stats).
 */
import type { EndpointHandler, EndpointResult } from '../monitor/http-server.js';
import { boolParam, pageParams, stringParam } from '../monitor/query.js';
import type { VarzExtension } from '../monitor/varz.js';
import { isDirectConsumer, publicConsumerCount } from './consumer-engine.js';
import type { JetStream } from './jetstream.js';

/** The single account of nats-edge, as nats-server names the global account. */
const ACCOUNT = '$G';
/** nats-server shows unlimited account reservations as uint64 max. */
const UNLIMITED = 18446744073709551615n;
const ACCOUNTS_LIMIT = 1024;

export interface JszSource {
  readonly serverId: string;
  readonly serverName: string;
}

function jsConfig(js: JetStream): Record<string, unknown> {
  const o = js.options;
  const cfg: Record<string, unknown> = { max_memory: o.maxMemoryStore, max_storage: o.maxFileStore, store_dir: js.storeDir };
  if (js.domain !== undefined) cfg['domain'] = js.domain;
  cfg['sync_interval'] = o.syncInterval === 'always' ? 0 : o.syncInterval * 1_000_000;
  if (o.syncInterval === 'always') cfg['sync_always'] = true;
  return cfg;
}

/** The /varz `jetstream` block: config and stats, filled in at each request. */
export function jetstreamVarz(js: JetStream): VarzExtension {
  return (v) => {
    const st = js.stats();
    v['jetstream'] = {
      config: jsConfig(js),
      stats: {
        memory: st.memory,
        storage: st.storage,
        reserved_memory: st.reservedMemory,
        reserved_storage: st.reservedStorage,
        accounts: 1,
        ha_assets: 0,
        api: st.api,
      },
    };
  };
}

/** GET /jsz[?accounts=1&streams=1&consumers=1&config=1&acc=$G&offset=&limit=&leader-only=1]. */
export function jszHandler(js: JetStream | null, source: JszSource): EndpointHandler {
  return (q): EndpointResult => {
    const consumers = boolParam(q, 'consumers');
    const streams = consumers || boolParam(q, 'streams');
    const accounts = streams || boolParam(q, 'accounts');
    const config = boolParam(q, 'config');
    const acc = stringParam(q, 'acc');
    const { offset, limit } = pageParams(q, ACCOUNTS_LIMIT);
    boolParam(q, 'leader-only'); // a single server is always the leader
    const now = new Date();
    if (js === null) {
      return {
        status: 200,
        body: {
          server_id: source.serverId,
          now,
          disabled: true,
          config: { max_memory: 0, max_storage: 0 },
          memory: 0,
          storage: 0,
          reserved_memory: 0,
          reserved_storage: 0,
          accounts: 0,
          ha_assets: 0,
          api: { total: 0, errors: 0 },
          streams: 0,
          consumers: 0,
          messages: 0,
          bytes: 0,
        },
      };
    }
    const st = js.stats();
    const body: Record<string, unknown> = {
      server_id: source.serverId,
      now,
      config: jsConfig(js),
      memory: st.memory,
      storage: st.storage,
      reserved_memory: st.reservedMemory,
      reserved_storage: st.reservedStorage,
      accounts: 1,
      ha_assets: 0,
      api: st.api,
      streams: st.streams,
      // Unlike $JS.API.INFO, nats-server's /jsz leaves out the consumers feeding mirrors and sources.
      consumers: publicCount(js),
      messages: st.messages,
      bytes: st.bytes,
    };
    if (accounts && (acc === '' || acc === ACCOUNT) && offset === 0 && limit > 0) {
      const account: Record<string, unknown> = {
        name: ACCOUNT,
        id: ACCOUNT,
        memory: st.memory,
        storage: st.storage,
        reserved_memory: UNLIMITED,
        reserved_storage: UNLIMITED,
        accounts: 0,
        ha_assets: 0,
        api: st.api,
      };
      if (streams) {
        const names = [...js.streams.keys()].sort();
        account['stream_detail'] = names.map((name) => {
          const s = js.streams.get(name)!;
          const info = s.info();
          const d: Record<string, unknown> = { name, created: info['created'], cluster: { leader: source.serverName } };
          if (config) d['config'] = info['config'];
          d['state'] = info['state'];
          if (consumers) {
            d['consumer_detail'] = [...s.consumers.values()].filter((c) => !isDirectConsumer(c)).map((c) => {
              const ci = { ...c.info() };
              if (!config) delete ci['config'];
              return ci;
            });
          }
          return d;
        });
      }
      body['account_details'] = [account];
    }
    return { status: 200, body };
  };
}

function publicCount(js: JetStream): number {
  let n = 0;
  for (const s of js.streams.values()) n += publicConsumerCount(s.consumers.values());
  return n;
}
