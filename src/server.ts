import { randomBytes } from 'node:crypto';
import type { ServerOptions } from './config/options.js';
import { MemoryBudget } from './core/budget.js';
import { Router } from './core/router.js';
import { attachJetStreamMonitoring, startJetStream, type JetStream } from './jetstream/index.js';
import type { Logger } from './log.js';
import type { LeafNodes } from './leaf/index.js';
import { attachConsole } from './monitor/console/index.js';
import { MonitorServer } from './monitor/http-server.js';
import { leafz } from './monitor/leafz.js';
import { leafRemoteMetrics, metrics, processMemory, type MetricsSource } from './monitor/metrics.js';
import type { ConnectionView, MonitorSource, ServerStats, SubjectIndexView } from './monitor/source.js';
import { Authenticator } from './nats/auth.js';
import type { ClientConnection } from './nats/client.js';
import type { ClientContext } from './nats/context.js';
import { NatsListener } from './nats/listener.js';
import type { MqttBroker, MqttContext } from './mqtt/broker.js';
import { parseMqttConfig, type MqttOptions } from './mqtt/config.js';
import type { MqttListener } from './mqtt/listener.js';
import { NATS_EDGE_VERSION, NATS_SERVER_LEVEL } from './version.js';
import { parseWebsocketConfig } from './ws/config.js';
import type { WebsocketListener } from './ws/listener.js';

const HOUSEKEEPING_MS = 250;

/** A snapshot of a closed connection for /connz?state=closed; the live object is let go. */
function snapshot(c: ClientConnection): ConnectionView {
  const subs = c.subscriptions();
  return {
    cid: c.cid,
    type: c.type,
    ip: c.ip,
    port: c.port,
    start: c.start,
    lastActivity: c.lastActivity,
    rttMs: c.rttMs,
    pendingBytes: 0,
    inMsgs: c.inMsgs,
    outMsgs: c.outMsgs,
    inBytes: c.inBytes,
    outBytes: c.outBytes,
    name: c.name,
    lang: c.lang,
    version: c.version,
    ...(c.tlsVersion !== undefined ? { tlsVersion: c.tlsVersion } : {}),
    ...(c.tlsCipher !== undefined ? { tlsCipher: c.tlsCipher } : {}),
    ...(c.authorizedUser !== undefined ? { authorizedUser: c.authorizedUser } : {}),
    stop: c.stop ?? new Date(),
    reason: c.reason ?? 'Client Closed',
    subscriptions: () => subs,
  };
}

/** nats-server ids are 56-char nkey-style public keys starting with N; ours look alike. */
function newServerId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = randomBytes(55);
  let id = 'N';
  for (let i = 0; i < 55; i++) id += alphabet[bytes[i]! & 31];
  return id;
}

/**
 * One nats-edge server: the router, the client listener, monitoring, and the housekeeping
 * that drives ping timers and write deadlines. Components that land later (JetStream, MQTT,
 * leafnodes) attach to the same router.
 */
export class Server implements ClientContext, MonitorSource, MqttContext {
  readonly router: Router;
  readonly budget: MemoryBudget;
  readonly serverId = newServerId();
  readonly version = NATS_SERVER_LEVEL;
  readonly start = new Date();
  configLoadTime = new Date();
  private opts: ServerOptions;
  private auth: Authenticator;
  private cid = 0;
  private readonly clients = new Map<number, ClientConnection>();
  private readonly closed: ConnectionView[] = [];
  private readonly counters = { slowConsumers: 0, totalConnections: 0 };
  private listener: NatsListener | null = null;
  private monitor: MonitorServer | null = null;
  private jetstream: JetStream | null = null;
  private mqtt: MqttBroker | null = null;
  private mqttListener: MqttListener | null = null;
  private mqttOptions: MqttOptions | null = null;
  private boundMqttPort = 0;
  private websocket: WebsocketListener | null = null;
  private leafnodes: LeafNodes | null = null;
  private housekeeping: NodeJS.Timeout | null = null;
  private boundPort = 0;
  private boundHttpPort = 0;
  private lameDuck = false;

  constructor(
    opts: ServerOptions,
    readonly log: Logger,
  ) {
    this.opts = opts;
    this.router = new Router();
    this.budget = new MemoryBudget(opts.maxPendingTotal);
    this.auth = new Authenticator({
      ...(opts.authorization !== undefined ? { authorization: opts.authorization } : {}),
      ...(opts.noAuthUser !== undefined ? { noAuthUser: opts.noAuthUser } : {}),
    });
  }

  get serverName(): string {
    return this.opts.serverName === '' ? this.serverId : this.opts.serverName;
  }

  // ---- ClientContext ----------------------------------------------------------------

  options(): ServerOptions {
    return this.opts;
  }

  authenticator(): Authenticator {
    return this.auth;
  }

  nextCid(): number {
    return ++this.cid;
  }

  infoBase(): Record<string, unknown> {
    const o = this.opts;
    const info: Record<string, unknown> = {
      server_id: this.serverId,
      server_name: this.serverName,
      version: NATS_SERVER_LEVEL,
      proto: 1,
      go: `nats-edge/${NATS_EDGE_VERSION} node${process.versions.node}`,
      host: o.host,
      port: this.boundPort,
      headers: !o.noHeaderSupport,
      max_payload: o.maxPayload,
    };
    if (this.auth.required) info['auth_required'] = true;
    if (o.tls !== undefined) {
      if (o.allowNonTls) info['tls_available'] = true;
      else info['tls_required'] = true;
      if (o.tls.verify) info['tls_verify'] = true;
    }
    if (o.jetstream?.enabled) info['jetstream'] = true;
    if (o.jetstream?.domain !== undefined) info['domain'] = o.jetstream.domain;
    if (this.lameDuck) info['ldm'] = true;
    return info;
  }

  private infoLine(client: ClientConnection): string {
    const info = this.infoBase();
    info['client_id'] = client.cid;
    if (client.ip !== '') info['client_ip'] = client.ip;
    return `INFO ${JSON.stringify(info)} \r\n`;
  }

  clientClosed(client: ClientConnection): void {
    if (!this.clients.delete(client.cid)) return;
    this.log.debug(`${client.ip}:${client.port} - cid:${client.cid} - Client connection closed: ${client.reason ?? ''}`);
    const max = this.opts.maxClosedClients;
    if (max <= 0) return;
    this.closed.push(snapshot(client));
    if (this.closed.length > max) this.closed.splice(0, this.closed.length - max);
  }

  slowConsumer(): void {
    this.counters.slowConsumers++;
  }

  /** MQTT connections closed: kept for /connz?state=closed like NATS ones. */
  connectionClosed(view: ConnectionView): void {
    const max = this.opts.maxClosedClients;
    if (max <= 0) return;
    const subs = view.subscriptions();
    this.closed.push({
      cid: view.cid,
      type: view.type,
      ip: view.ip,
      port: view.port,
      start: view.start,
      lastActivity: view.lastActivity,
      rttMs: view.rttMs,
      pendingBytes: 0,
      inMsgs: view.inMsgs,
      outMsgs: view.outMsgs,
      inBytes: view.inBytes,
      outBytes: view.outBytes,
      name: view.name,
      lang: view.lang,
      version: view.version,
      ...(view.tlsVersion !== undefined ? { tlsVersion: view.tlsVersion } : {}),
      ...(view.tlsCipher !== undefined ? { tlsCipher: view.tlsCipher } : {}),
      ...(view.authorizedUser !== undefined ? { authorizedUser: view.authorizedUser } : {}),
      ...(view.mqttClient !== undefined ? { mqttClient: view.mqttClient } : {}),
      stop: view.stop ?? new Date(),
      reason: view.reason ?? 'Client Closed',
      subscriptions: () => subs,
    });
    if (this.closed.length > max) this.closed.splice(0, this.closed.length - max);
  }

  natsClientCount(): number {
    return this.clients.size;
  }

  /** The bound MQTT port (0 when MQTT is off). */
  mqttPort(): number {
    return this.boundMqttPort;
  }

  /** MQTT needs JetStream's store (sessions, retained messages), as in nats-server. */
  private async startMqtt(): Promise<void> {
    const block = this.opts.blocks.mqtt;
    if (block === undefined) return;
    const mo = parseMqttConfig(block, this.opts);
    const js = this.jetstream;
    if (js === null) throw new Error('mqtt requires jetstream');
    // Loaded only when configured (here and for websocket and leafnodes below): the bundle
    // evaluates mqtt-packet, ws and nkeys/tweetnacl on first use, not at every start.
    const [{ MqttBroker }, { MqttListener }] = await Promise.all([import('./mqtt/broker.js'), import('./mqtt/listener.js')]);
    const broker = new MqttBroker(this, mo, js);
    broker.start();
    const listener = new MqttListener(broker);
    this.boundMqttPort = await listener.listen();
    this.mqtt = broker;
    this.mqttListener = listener;
    this.mqttOptions = mo;
    this.log.info(`Listening for MQTT clients on ${mo.tls !== undefined ? 'tls' : 'mqtt'}://${hostPort(mo.host, this.boundMqttPort)}`);
  }

  /** ws://host:port of the websocket listener ('' when the websocket block is off). */
  websocketUrl(): string {
    const ws = this.websocket;
    return ws === null ? '' : `${ws.scheme}://${hostPort(ws.opts.host, ws.port)}`;
  }

  /** NATS over WebSocket, and MQTT on `/mqtt` when the mqtt block is on (nats-server's layout). */
  private async startWebsocket(): Promise<void> {
    const block = this.opts.blocks.websocket;
    if (block === undefined) return;
    const wo = parseWebsocketConfig(block, this.opts);
    if (wo === null) return;
    const { WebsocketListener } = await import('./ws/listener.js');
    const ws = new WebsocketListener(this, wo, {
      clientCount: () => this.clients.size + (this.mqtt?.connectionCount ?? 0),
      accepted: (c) => {
        this.clients.set(c.cid, c);
        this.counters.totalConnections++;
        this.log.debug(`${c.ip}:${c.port} - cid:${c.cid} - Client connection created`);
      },
      mqtt: () => {
        const l = this.mqttListener;
        return l === null ? null : (stream, meta) => l.attach(stream, meta);
      },
    });
    await ws.listen();
    this.websocket = ws;
    this.log.info(`Listening for websocket clients on ${this.websocketUrl()}`);
    if (ws.scheme === 'ws') this.log.warn('Websocket not configured with TLS. DO NOT USE IN PRODUCTION!');
  }

  /** Leafnode remotes: dialed in the background, so the server is ready whether the hub is up or not. */
  private async startLeafnodes(): Promise<void> {
    const block = this.opts.blocks.leafnodes;
    if (block === undefined) return;
    const { LeafNodes, parseLeafConfig } = await import('./leaf/index.js');
    const lo = parseLeafConfig(block, this.opts);
    if (lo === null) return;
    const o = this.opts;
    this.leafnodes = new LeafNodes(
      {
        router: this.router,
        budget: this.budget,
        log: this.log,
        serverId: this.serverId,
        serverName: this.serverName,
        version: NATS_SERVER_LEVEL,
        maxPayload: o.maxPayload,
        maxPending: o.maxPending,
        pingIntervalMs: o.pingIntervalMs,
        pingMax: o.pingMax,
        jsDomain: o.jetstream?.domain ?? '',
        jetstream: this.jetstream !== null,
        nextCid: () => this.nextCid(),
      },
      lo,
      this.jetstream,
    );
    this.leafnodes.start();
  }

  // ---- lifecycle --------------------------------------------------------------------

  async startServer(): Promise<void> {
    const o = this.opts;
    // JetStream first: the API must answer from the first client connection on.
    if (o.jetstream?.enabled) {
      this.jetstream = await startJetStream({
        router: this.router,
        log: this.log,
        options: o.jetstream,
        profile: o.profile,
        nextCid: () => this.nextCid(),
      });
    }
    const listener = new NatsListener(this, {
      clientCount: () => this.clients.size + (this.mqtt?.connectionCount ?? 0),
      accepted: (c) => {
        this.clients.set(c.cid, c);
        this.counters.totalConnections++;
        this.log.debug(`${c.ip}:${c.port} - cid:${c.cid} - Client connection created`);
      },
      infoLine: (c) => this.infoLine(c),
    });
    try {
      this.boundPort = await listener.listen(o.host, o.port);
    } catch (err) {
      this.jetstream?.shutdown();
      this.jetstream = null;
      throw err;
    }
    this.listener = listener;
    this.log.info(`Listening for client connections on ${hostPort(o.host, this.boundPort)}`);
    try {
      await this.startMqtt();
      await this.startWebsocket();
    } catch (err) {
      this.mqttListener?.close();
      this.mqttListener = null;
      this.mqtt?.shutdown();
      this.mqtt = null;
      listener.close();
      this.listener = null;
      this.jetstream?.shutdown();
      this.jetstream = null;
      throw err;
    }
    if (o.tls !== undefined) this.log.info('TLS required for client connections');
    await this.startLeafnodes();
    if (o.httpPort !== undefined) {
      this.monitor = new MonitorServer(this, {
        host: o.httpHost,
        port: o.httpPort,
        basePath: o.httpBasePath,
        log: (level, msg) => this.log.log(level, msg),
      });
      attachJetStreamMonitoring(this.monitor, this.jetstream, this);
      this.monitor.addVarzExtension((v) => this.mqttVarz(v));
      this.monitor.addVarzExtension((v) => {
        if (this.websocket !== null) v['websocket'] = this.websocket.varz();
      });
      this.monitor.route('/leafz', (q) => leafz({ serverId: this.serverId, leafLinks: () => this.leafnodes?.views() ?? [] }, q));
      this.monitor.addVarzExtension((v) => this.leafVarz(v));
      this.monitor.route('/metrics', () => metrics(this.metricsSnapshot()));
      // The console at the base path and its live feed at /events (issue 8).
      attachConsole(this.monitor, {
        metrics: () => this.metricsSnapshot(),
        traffic: () => this.router.stats,
        connections: () => this.openConnections(),
        leafLinks: () => this.leafnodes?.views() ?? [],
        jetstream: () => this.jetstream,
      });
      this.boundHttpPort = await this.monitor.listen();
    }
    this.housekeeping = setInterval(() => this.tick(), HOUSEKEEPING_MS);
    this.housekeeping.unref();
    this.log.info(`Server is ready`);
  }

  private tick(): void {
    const now = Date.now();
    for (const c of this.clients.values()) c.tick(now);
  }

  /**
   * Apply reloaded options without dropping connections: limits, logging, auth and
   * permissions (a client whose user is gone or whose credentials no longer pass is closed).
   */
  reload(next: ServerOptions): void {
    const prev = this.opts;
    this.opts = { ...next, host: prev.host, port: prev.port, httpHost: prev.httpHost, httpPort: prev.httpPort };
    this.configLoadTime = new Date();
    this.budget.setLimit(next.maxPendingTotal);
    this.log.configure(next.logging);
    try {
      this.auth = new Authenticator({
        ...(next.authorization !== undefined ? { authorization: next.authorization } : {}),
        ...(next.noAuthUser !== undefined ? { noAuthUser: next.noAuthUser } : {}),
      });
      this.listener?.configureTls();
      this.websocket?.reload(next);
    } catch (err) {
      this.log.error(`Reload: ${(err as Error).message}; keeping the previous authorization and TLS`);
    }
    const wsAuth = this.websocket?.authenticator() ?? this.auth;
    for (const c of this.clients.values()) {
      c.applyLimits(next.maxControlLine, next.maxPayload);
      c.reauthenticate(c.type === 'websocket' ? wsAuth : this.auth);
    }
    const mqttBlock = next.blocks.mqtt;
    if (this.mqtt !== null && mqttBlock !== undefined) {
      try {
        this.mqtt.reload(parseMqttConfig(mqttBlock, next), next);
      } catch (err) {
        this.log.error(`Reload: mqtt: ${(err as Error).message}; MQTT clients keep their authorization`);
      }
    }
    if (JSON.stringify(prev.blocks.leafnodes?.value) !== JSON.stringify(next.blocks.leafnodes?.value)) {
      this.log.warn('Reload: leafnodes changes take effect at the next restart; the running links are kept');
    }
    this.log.info('Reloaded server configuration');
  }

  /**
   * Lame duck mode (nats-server SIGUSR2): stop accepting, tell clients with INFO ldm, wait the
   * grace period, then close the rest spread over the duration, then stop.
   */
  async enterLameDuck(): Promise<void> {
    if (this.lameDuck) return;
    this.lameDuck = true;
    this.log.info('Entering lame duck mode, stop accepting new clients');
    this.listener?.close();
    this.websocket?.close();
    this.broadcastLdm();
    const o = this.opts;
    await delay(o.lameDuckGracePeriodMs);
    this.log.info('Closing existing clients');
    const clients = [...this.clients.values()];
    const spread = Math.max(0, o.lameDuckDurationMs - o.lameDuckGracePeriodMs);
    const step = clients.length > 0 ? Math.min(1000, spread / clients.length) : 0;
    for (const c of clients) {
      c.close('Server Shutdown');
      if (step > 0) await delay(step);
    }
  }

  private broadcastLdm(): void {
    const info = `INFO ${JSON.stringify(this.infoBase())} \r\n`;
    for (const c of this.clients.values()) c.sendAsyncInfo(info);
  }

  /**
   * Shutdown (SIGTERM / SIGINT): stop accepting, tell clients (INFO ldm) so they reconnect
   * elsewhere, flush what is queued, close every connection; bounded by `timeoutMs`.
   */
  async shutdown(timeoutMs = 5000): Promise<void> {
    this.log.info('Initiating Shutdown...');
    if (this.housekeeping !== null) clearInterval(this.housekeeping);
    this.listener?.close();
    this.websocket?.close();
    if (!this.lameDuck) {
      this.lameDuck = true;
      this.broadcastLdm();
    }
    for (const c of [...this.clients.values()]) c.close('Server Shutdown');
    this.mqttListener?.close();
    this.mqttListener = null;
    // Before JetStream: buffered uplink messages go into its last commit.
    this.leafnodes?.stop();
    this.leafnodes = null;
    // Before JetStream: sessions and queues go into its last commit.
    this.mqtt?.shutdown();
    this.mqtt = null;
    // Commits what is queued and closes the store cleanly (checkpointed, no WAL left behind).
    this.jetstream?.shutdown();
    this.jetstream = null;
    await Promise.race([this.monitor?.close(), delay(timeoutMs)]);
    this.log.info('Server Exiting..');
  }

  // ---- MonitorSource ----------------------------------------------------------------

  clientPort(): number {
    return this.boundPort;
  }

  httpPort(): number {
    return this.boundHttpPort;
  }

  stats(): ServerStats {
    const r = this.router.stats;
    return {
      inMsgs: r.inMsgs,
      outMsgs: r.outMsgs,
      inBytes: r.inBytes,
      outBytes: r.outBytes,
      slowConsumers: this.counters.slowConsumers,
      totalConnections: this.counters.totalConnections,
      pendingBytes: this.budget.bytes,
      pendingLimit: this.budget.limit,
      publisherPauses: this.budget.pauses,
    };
  }

  openConnections(): Iterable<ConnectionView> {
    if (this.mqtt === null) return this.clients.values();
    const all: ConnectionView[] = [...this.clients.values(), ...this.mqtt.connections()];
    return all.sort((a, b) => a.cid - b.cid);
  }

  /** /varz `mqtt` as nats-server fills it, plus nats-edge's counts under edge.mqtt. */
  private mqttVarz(v: Record<string, unknown>): void {
    const mo = this.mqttOptions;
    if (mo === null || this.mqtt === null) return;
    const block: Record<string, unknown> = { host: mo.host, port: this.boundMqttPort };
    if (mo.noAuthUser !== undefined) block['no_auth_user'] = mo.noAuthUser;
    if (mo.tls !== undefined) block['tls_timeout'] = mo.tls.timeoutMs / 1000;
    block['ack_wait'] = mo.ackWaitMs * 1_000_000;
    block['max_ack_pending'] = mo.maxAckPending;
    v['mqtt'] = block;
    const st = this.mqtt.stats();
    const edge = (v['edge'] ?? {}) as Record<string, unknown>;
    edge['mqtt'] = {
      connections: st.connections,
      sessions: st.sessions,
      retained_messages: st.retained,
      dropped_queued: st.droppedQueued,
      dropped_qos0: st.droppedQos0,
      max_queued_messages: mo.maxQueuedMessages,
    };
    v['edge'] = edge;
  }

  /** /varz `leaf` and `leafnodes` as nats-server fills them, plus the uplink under edge.leaf. */
  private leafVarz(v: Record<string, unknown>): void {
    const leafs = this.leafnodes;
    if (leafs === null) return;
    const views = leafs.views();
    v['leafnodes'] = views.filter((l) => l.state === 'connected').length;
    v['leaf'] = { remotes: views.map((l) => ({ url: l.url, account: l.account })), reconnect_interval: leafs.opts.reconnectMs * 1_000_000 };
    const edge = (v['edge'] ?? {}) as Record<string, unknown>;
    edge['leaf'] = { dropped_live: leafs.droppedLive() };
    v['edge'] = edge;
  }

  /** /metrics: one snapshot of what /varz, /jsz, /leafz and edge.mqtt show. */
  private metricsSnapshot(): MetricsSource {
    const r = this.router.stats;
    const o = this.opts;
    let client = 0;
    let websocket = 0;
    for (const c of this.clients.values()) {
      if (c.type === 'websocket') websocket++;
      else client++;
    }
    const mq = this.mqtt?.stats() ?? null;
    const leafs = this.leafnodes;
    const views = leafs?.views() ?? [];
    const js = this.jetstream;
    const jst = js?.stats() ?? null;
    return {
      info: { version: NATS_SERVER_LEVEL, edgeVersion: NATS_EDGE_VERSION, serverId: this.serverId, serverName: this.serverName, profile: o.profile?.name ?? null },
      uptimeSeconds: (Date.now() - this.start.getTime()) / 1000,
      connections: { client, websocket, mqtt: mq?.connections ?? 0, leaf: views.filter((v) => v.state === 'connected').length },
      totalConnections: this.counters.totalConnections,
      inMsgs: r.inMsgs,
      outMsgs: r.outMsgs,
      inBytes: r.inBytes,
      outBytes: r.outBytes,
      slowConsumers: this.counters.slowConsumers,
      subscriptions: this.router.index.count,
      memory: {
        ...processMemory(),
        memoryBudgetBytes: o.memoryBudget,
        pendingBytes: this.budget.bytes,
        pendingLimitBytes: this.budget.limit,
        publisherPauses: this.budget.pauses,
        rssCeilingBytes: o.profile?.rssCeiling ?? null,
      },
      jetstream:
        js === null || jst === null
          ? null
          : {
              streams: jst.streams,
              consumers: jst.consumers,
              messages: jst.messages,
              bytes: jst.bytes,
              storeBytes: jst.storage,
              storeMaxBytes: js.options.maxFileStore,
              memoryBytes: jst.memory,
              memoryMaxBytes: js.options.maxMemoryStore,
              apiRequests: jst.api.total,
              apiErrors: jst.api.errors,
            },
      mqtt: mq === null ? null : { sessions: mq.sessions, retained: mq.retained, droppedQueued: mq.droppedQueued, droppedQos0: mq.droppedQos0 },
      leaf: leafs === null ? null : { droppedLive: leafs.droppedLive(), remotes: leafRemoteMetrics(views, Date.now()) },
    };
  }

  closedConnections(): Iterable<ConnectionView> {
    return this.closed;
  }

  subjectIndex(): SubjectIndexView {
    return this.router.index;
  }

  healthError(): string | null {
    return this.lameDuck || this.listener === null ? 'server is not accepting client connections' : null;
  }
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
