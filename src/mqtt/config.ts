/**
 * The `mqtt { }` block in nats-server's syntax (mqtt-bridge.md §2.7), read from the parsed
 * config tree so every problem names its file:line:col. nats-server keys nats-edge does not act
 * on (js_domain, stream_replicas, ...) are accepted and ignored, as a single server has no use
 * for them; unknown keys are errors, as in nats-server.
 */
import { bool, durationMs, fail, int, readAuthorizationBlock, readTlsBlock, splitHostPort, str } from '../config/block-reader.js';
import { formatPos, type SourcePos } from '../config/errors.js';
import type { RawBlock, ServerOptions, TlsOptions } from '../config/options.js';

export interface MqttAuthorization {
  user?: string;
  password?: string;
  token?: string;
  timeoutMs: number;
}

export interface MqttOptions {
  host: string;
  /** 0 = a random port. */
  port: number;
  tls?: TlsOptions;
  /** MQTT-only credential (nats-server: cannot be combined with the global users list). */
  authorization?: MqttAuthorization;
  noAuthUser?: string;
  ackWaitMs: number;
  /** Outgoing QoS 1/2 messages in flight per session (also capped by the client's Receive Maximum). */
  maxAckPending: number;
  /** nats-edge: QoS 1/2 messages a session queues beyond the in-flight window; the oldest is dropped beyond it. */
  maxQueuedMessages: number;
  rejectQos2Publish: boolean;
  downgradeQos2Subscribe: boolean;
  /** file:line of the block. */
  where: string;
}

export const MQTT_DEFAULT_PORT = 1883;
const DEFAULT_ACK_WAIT_MS = 30_000;
const DEFAULT_MAX_ACK_PENDING = 1024;
const DEFAULT_MAX_QUEUED = 1000;
const DEFAULT_TIMEOUT_MS = 2000;

/** Accepted for nats-server compatibility; meaningless on one server without a cluster. */
const IGNORED = new Set([
  'js_domain',
  'stream_replicas',
  'consumer_replicas',
  'consumer_memory_storage',
  'consumer_inactive_threshold',
  'consumer_auto_cleanup',
  'js_api_timeout',
  'api_timeout',
]);



/**
 * Reads the mqtt block. `server` gives the rest of the configuration: MQTT needs JetStream (as
 * in nats-server) and its own authorization cannot be combined with a users list.
 */
export function parseMqttConfig(block: RawBlock, server: ServerOptions): MqttOptions {
  const node = block.node;
  const blockPos: SourcePos = node?.pos ?? { file: block.where, line: 0, col: 0 };
  if (node === undefined || node.kind !== 'map') fail(blockPos, 'mqtt: expected a block { ... }');
  const o: MqttOptions = {
    host: server.host,
    port: MQTT_DEFAULT_PORT,
    ackWaitMs: DEFAULT_ACK_WAIT_MS,
    maxAckPending: DEFAULT_MAX_ACK_PENDING,
    maxQueuedMessages: DEFAULT_MAX_QUEUED,
    rejectQos2Publish: false,
    downgradeQos2Subscribe: false,
    where: block.where,
  };
  for (const [key, e] of node.entries) {
    if (e.usedAsVariable) continue;
    switch (key.toLowerCase()) {
      case 'host':
      case 'net':
        o.host = str(e);
        break;
      case 'port': {
        const p = int(e);
        if (p > 65535 || p < -1) fail(e.value.pos, `port: ${p} out of range`);
        o.port = p <= 0 ? 0 : p;
        break;
      }
      case 'listen': {
        const hp = e.value.kind === 'int' ? { host: o.host, port: e.value.value } : splitHostPort(str(e), e.value.pos);
        if (hp.host !== '') o.host = hp.host;
        o.port = hp.port <= 0 ? 0 : hp.port;
        break;
      }
      case 'tls':
        o.tls = readTlsBlock(e, 'mqtt');
        break;
      case 'authorization':
        o.authorization = { timeoutMs: DEFAULT_TIMEOUT_MS, ...readAuthorizationBlock(e, 'mqtt') };
        break;
      case 'no_auth_user':
        o.noAuthUser = str(e);
        break;
      case 'ack_wait':
        o.ackWaitMs = durationMs(e);
        if (o.ackWaitMs <= 0) fail(e.value.pos, 'ack_wait: must be positive');
        break;
      case 'max_ack_pending':
      case 'max_pending':
      case 'max_inflight': {
        const n = int(e);
        if (n < 0 || n > 65535) fail(e.value.pos, `${key}: invalid value ${n}, should be in [0..65535] range`);
        o.maxAckPending = n === 0 ? DEFAULT_MAX_ACK_PENDING : n;
        break;
      }
      case 'max_queued_messages': {
        const n = int(e);
        if (n < 0) fail(e.value.pos, `${key}: must not be negative`);
        o.maxQueuedMessages = n;
        break;
      }
      case 'reject_qos2_publish':
        o.rejectQos2Publish = bool(e);
        break;
      case 'downgrade_qos2_subscribe':
        o.downgradeQos2Subscribe = bool(e);
        break;
      default:
        if (!IGNORED.has(key.toLowerCase())) fail(e.keyPos, `unknown field "${key}" in mqtt block`);
    }
  }
  if (server.jetstream?.enabled !== true) {
    fail(blockPos, 'mqtt requires jetstream to be enabled (add a jetstream { store_dir: ... } block)');
  }
  if (o.authorization !== undefined && (server.authorization?.users?.length ?? 0) > 0) {
    fail(blockPos, 'mqtt authorization cannot be combined with the users of the top-level authorization block');
  }
  if (o.noAuthUser !== undefined) {
    const users = server.authorization?.users ?? [];
    if (!users.some((u) => u.user === o.noAuthUser)) {
      fail(blockPos, `mqtt no_auth_user: "${o.noAuthUser}" not present as user in authorization block`);
    }
  }
  return o;
}

/** For messages: the position of the block. */
export function mqttBlockPos(block: RawBlock): string {
  return block.node !== undefined ? formatPos(block.node.pos) : block.where;
}
