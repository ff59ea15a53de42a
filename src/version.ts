/** Replaced by the build (esbuild define) with package.json's version. */
declare const NATS_EDGE_VERSION_DEFINE: string | undefined;

export const NATS_EDGE_VERSION: string =
  typeof NATS_EDGE_VERSION_DEFINE === 'string' ? NATS_EDGE_VERSION_DEFINE : '0.0.0-dev';

/**
 * The nats-server level whose client-visible behaviour we implement, advertised in INFO
 * `version`: clients gate features on it (nats.js needs >= 2.10.0 for filter_subjects and
 * consumer metadata; see shared/spec/jetstream-api.md §1).
 */
export const NATS_SERVER_LEVEL = '2.10.0';
