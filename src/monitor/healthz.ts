/**
 * /healthz: 200 {"status":"ok"} or 503 {"status":"unavailable","error":"..."}, written as
 * single-line JSON as nats-server writes it (the other endpoints are pretty-printed).
 */
import type { EndpointResult } from './http-server.js';
import type { MonitorSource } from './source.js';
import { boolParam } from './query.js';

/**
 * The JetStream options nats-server takes. They are validated (a bad boolean is a 400, as on
 * nats-server) but the check itself is the source's: nats-edge runs a single JetStream
 * server, so the meta-leader and replica checks they select between do not exist here.
 * 2.10+ options (details, js-meta-only, account, stream, consumer) are accepted and ignored.
 */
const HEALTHZ_BOOL_PARAMS = ['js-enabled', 'js-enabled-only', 'js-server-only'] as const;

export function healthz(
  source: MonitorSource,
  query: URLSearchParams,
  log?: (level: 'INF' | 'WRN' | 'ERR', msg: string) => void,
): EndpointResult {
  for (const name of HEALTHZ_BOOL_PARAMS) boolParam(query, name);
  const error = source.healthError();
  if (error === null) return { status: 200, body: { status: 'ok' }, compact: true };
  log?.('WRN', `Healthcheck failed: ${JSON.stringify(error)}`);
  return { status: 503, body: { status: 'unavailable', error }, compact: true };
}
