/**
 * MQTT test helpers: start a reference broker (Debian's mosquitto, or nats-server's MQTT
 * listener) or nats-edge with an `mqtt {}` block, connect mqtt.js clients, collect what they
 * receive, drive mosquitto_pub / mosquitto_sub, and talk raw MQTT bytes over a bare socket.
 * Every process and client made here is tracked and torn down by `stopAllMqtt()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { freePort, makeTempDir, startServer, stopAllServers, within, type RunningServer } from './servers.js';

export type MqttBrokerKind = 'mosquitto' | 'nats-edge' | 'nats-server';
export type MqttVersion = 3 | 4 | 5;

const HOST = '127.0.0.1';
const MOSQUITTO_BIN = process.env['MOSQUITTO_BIN'] ?? '/usr/sbin/mosquitto';

/**
 * The brokers an MQTT-standard table runs against: mosquitto and nats-edge, narrowed with
 * MQTT_BROKERS=mosquitto (or nats-edge, or a comma list).
 */
export function mqttBrokerKinds(): MqttBrokerKind[] {
  const env = process.env['MQTT_BROKERS'];
  const all: MqttBrokerKind[] = ['mosquitto', 'nats-edge'];
  if (env === undefined || env === '') return all;
  const wanted = env.split(',').map((s) => s.trim());
  return all.filter((k) => wanted.includes(k));
}

/** The NATS-speaking brokers a bridge table runs against (nats-server proves, nats-edge is tested). */
export function natsMqttKinds(): Array<'nats-server' | 'nats-edge'> {
  const env = process.env['MQTT_BROKERS'];
  const all: Array<'nats-server' | 'nats-edge'> = ['nats-server', 'nats-edge'];
  if (env === undefined || env === '') return all;
  const wanted = env.split(',').map((s) => s.trim());
  return all.filter((k) => wanted.includes(k));
}

export interface MqttBroker {
  readonly kind: MqttBrokerKind;
  /** The MQTT listener (changes across `restart`). */
  readonly mqttPort: number;
  /** nats://... for nats-server and nats-edge; undefined for mosquitto. */
  readonly natsUrl: string | undefined;
  /** Persistence directory (JetStream store dir, or mosquitto's persistence_location). */
  readonly storeDir: string;
  logs(): string;
  /** Stop with `signal` (default SIGTERM: clean) and start the same kind on the same store dir. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface MqttBrokerOptions {
  /** mosquitto.conf lines, or NATS top-level config lines, appended to the generated config. */
  extraConfig?: string;
  /** NATS kinds: lines inside the `mqtt {}` block. */
  mqttBlock?: string;
  /** Reuse a store dir. */
  storeDir?: string;
}

const mosquittos = new Set<ChildProcess>();

/** Resolves once `port` accepts a TCP connection (short growing backoff; nothing to await). */
async function waitAccepting(port: number, timeoutMs: number, alive: () => boolean, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`broker exited before its MQTT port ${port} opened:\n${what()}`);
    const ok = await new Promise<boolean>((resolveProbe) => {
      const s = tcpConnect({ host: HOST, port });
      s.once('connect', () => {
        s.destroy();
        resolveProbe(true);
      });
      s.once('error', () => resolveProbe(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
  throw new Error(`MQTT port ${port} not accepting within ${timeoutMs} ms:\n${what()}`);
}

class MosquittoBroker implements MqttBroker {
  readonly kind = 'mosquitto' as const;
  readonly natsUrl = undefined;
  private child: ChildProcess | undefined;
  private output = '';
  mqttPort = 0;

  constructor(
    readonly storeDir: string,
    private readonly opts: MqttBrokerOptions,
  ) {}

  logs(): string {
    return this.output;
  }

  async start(): Promise<void> {
    this.mqttPort = await freePort();
    const conf = join(this.storeDir, `mosquitto-${this.mqttPort}.conf`);
    writeFileSync(
      conf,
      [
        `listener ${this.mqttPort} ${HOST}`,
        'allow_anonymous true',
        'persistence true',
        `persistence_location ${this.storeDir}/`,
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'log_type notice',
        'log_type information',
        this.opts.extraConfig ?? '',
        '',
      ].join('\n'),
    );
    const child = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.storeDir });
    this.child = child;
    mosquittos.add(child);
    let exited = false;
    child.once('exit', () => {
      exited = true;
      mosquittos.delete(child);
    });
    const append = (chunk: Buffer): void => {
      this.output += chunk.toString('utf8');
      if (this.output.length > 1 << 20) this.output = this.output.slice(-(1 << 19));
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    await waitAccepting(this.mqttPort, 10_000, () => !exited, () => this.output);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.start();
  }
}

class NatsMqttBroker implements MqttBroker {
  private srv: RunningServer | undefined;
  mqttPort = 0;

  constructor(
    readonly kind: 'nats-edge' | 'nats-server',
    readonly storeDir: string,
    private readonly opts: MqttBrokerOptions,
  ) {}

  get natsUrl(): string {
    if (this.srv === undefined) throw new Error('broker not started');
    return this.srv.url;
  }

  get server(): RunningServer | undefined {
    return this.srv;
  }

  logs(): string {
    return this.srv?.logs() ?? '';
  }

  async start(): Promise<void> {
    this.mqttPort = await freePort();
    const config = [
      `server_name: ${this.kind === 'nats-edge' ? 'edge1' : 'ref1'}`,
      `jetstream { store_dir: ${JSON.stringify(this.storeDir)} }`,
      `mqtt {\n  port: ${this.mqttPort}\n${this.opts.mqttBlock ?? ''}\n}`,
      this.opts.extraConfig ?? '',
      '',
    ].join('\n');
    const srv = await startServer(this.kind, { config });
    this.srv = srv;
    await waitAccepting(this.mqttPort, 10_000, () => srv.rss() > 0, () => srv.logs());
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.srv?.stop(signal);
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.start();
  }
}

/** Starts a broker of `kind` with MQTT on a free loopback port and persistence in a temp dir. */
export async function startMqttBroker(kind: MqttBrokerKind, opts: MqttBrokerOptions = {}): Promise<MqttBroker> {
  const storeDir = opts.storeDir ?? makeTempDir(`mqtt-${kind}-`);
  const broker = kind === 'mosquitto' ? new MosquittoBroker(storeDir, opts) : new NatsMqttBroker(kind, storeDir, opts);
  await broker.start();
  return broker;
}

// ---------------------------------------------------------------------------------------------
// mqtt.js clients

const clients = new Set<MqttClient>();
let clientSeq = 0;

/** A client id unique within this test process. */
export function uniqueId(prefix = 'c'): string {
  clientSeq++;
  return `${prefix}-${process.pid}-${clientSeq}-${Math.random().toString(36).slice(2, 6)}`;
}

export interface ConnectOptions extends IClientOptions {
  protocolVersion?: 4 | 5 | 3;
}

export interface MqttConn {
  client: MqttClient;
  /** Attached before CONNECT was sent, so messages a resumed session gets at once are kept. */
  inbox: Inbox;
  connack: IConnackPacket;
}

/** Connects mqtt.js without reconnects (a dead or kicking broker surfaces at once). */
export async function connectMqtt(port: number, opts: ConnectOptions = {}): Promise<MqttConn> {
  const client = mqtt.connect({
    host: HOST,
    port,
    protocol: 'mqtt',
    protocolVersion: 4,
    clientId: uniqueId(),
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...opts,
  });
  clients.add(client);
  const inbox = new Inbox(client);
  const connack = await within(
    new Promise<IConnackPacket>((resolveConnect, reject) => {
      client.once('connect', (p) => resolveConnect(p));
      client.once('error', (err) => reject(err));
      client.once('close', () => reject(new Error('closed before CONNACK')));
    }),
    6000,
    `mqtt connect to ${port}`,
  );
  return { client, inbox, connack };
}

/** Ends a client cleanly (DISCONNECT) and waits until its socket closed. */
export async function endMqtt(client: MqttClient): Promise<void> {
  clients.delete(client);
  if (client.disconnected && !client.connected) return;
  await within(client.endAsync(), 5000, 'mqtt end');
}

/** Drops the TCP connection without DISCONNECT (an abnormal disconnect) and waits for the close. */
export async function dropMqtt(client: MqttClient): Promise<void> {
  clients.delete(client);
  const closed = new Promise<void>((r) => client.once('close', () => r()));
  client.stream.destroy();
  await within(closed, 5000, 'mqtt drop');
  client.end(true);
}

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

/**
 * Everything one client receives, in order, with waits that time out with what did arrive.
 * Markers prove absence: publish a marker after the messages that must not arrive, wait for
 * it, then assert on what came before it.
 */
export class Inbox {
  readonly messages: ReceivedMessage[] = [];
  private waiters: Array<() => void> = [];

  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload, packet });
      const ws = this.waiters;
      this.waiters = [];
      for (const w of ws) w();
    });
  }

  /** Resolves with the first message (from `from` on) that matches, else rejects after `ms`. */
  async waitFor(pred: (m: ReceivedMessage) => boolean, ms = 5000, from = 0): Promise<ReceivedMessage> {
    const deadline = Date.now() + ms;
    for (;;) {
      for (let i = from; i < this.messages.length; i++) {
        const m = this.messages[i];
        if (m !== undefined && pred(m)) return m;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout after ${ms} ms; received: ${this.describe()}`);
      await new Promise<void>((resolveWait) => {
        const t = setTimeout(resolveWait, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolveWait();
        });
      });
    }
  }

  /** Waits until `n` messages arrived in total; returns them. */
  async count(n: number, ms = 5000): Promise<ReceivedMessage[]> {
    await this.waitFor(() => this.messages.length >= n, ms);
    return this.messages.slice(0, n);
  }

  /** Waits for a message on `topic` and returns the messages received before it (the marker excluded). */
  async until(topic: string, ms = 5000): Promise<ReceivedMessage[]> {
    const marker = await this.waitFor((m) => m.topic === topic, ms);
    return this.messages.slice(0, this.messages.indexOf(marker));
  }

  topics(): string[] {
    return this.messages.map((m) => m.topic);
  }

  clear(): void {
    this.messages.length = 0;
  }

  describe(): string {
    return JSON.stringify(this.messages.map((m) => ({ topic: m.topic, payload: m.payload.toString('latin1'), qos: m.packet.qos, retain: m.packet.retain })));
  }
}

/** Subscribes and resolves with the granted codes from the SUBACK. */
export async function subscribe(
  client: MqttClient,
  filter: string | string[],
  opts: Parameters<MqttClient['subscribeAsync']>[1] = { qos: 0 },
): Promise<number[]> {
  const granted = await within(client.subscribeAsync(filter, opts), 5000, `subscribe ${String(filter)}`);
  return granted.map((g) => g.qos);
}

export async function closeAllClients(): Promise<void> {
  const all = [...clients];
  clients.clear();
  await Promise.all(all.map((c) => new Promise<void>((r) => c.end(true, {}, () => r()))));
}

// ---------------------------------------------------------------------------------------------
// mosquitto_pub / mosquitto_sub

const tools = new Set<ChildProcess>();

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs mosquitto_pub against 127.0.0.1:port with `args`; resolves when it exits. */
export function mosquittoPub(port: number, args: string[], timeoutMs = 10_000): Promise<ToolResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('mosquitto_pub', ['-h', HOST, '-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    tools.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mosquitto_pub ${args.join(' ')} did not exit within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      tools.delete(child);
      resolveRun({ code, stdout, stderr });
    });
  });
}

export interface SubLine {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  /** v5 user properties as mosquitto_sub prints them (`k:v` pairs), '' when none. */
  userProps: string;
  contentType: string;
  responseTopic: string;
}

const SUB_FORMAT = 'MSG|%t|%x|%q|%r|%P|%C|%R|END';

/**
 * A running mosquitto_sub. It runs with -d so its SUBACK debug line tells when the
 * subscription is in place; messages come out in a fixed format with hex payloads.
 */
export class MosquittoSub {
  readonly lines: SubLine[] = [];
  private stdout = '';
  private stderr = '';
  private waiters: Array<() => void> = [];
  private readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(port: number, args: string[]) {
    // stdbuf: mosquitto_sub block-buffers stdout on a pipe, which would hide the SUBACK line.
    this.child = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', HOST, '-p', String(port), '-d', '-F', SUB_FORMAT, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    tools.add(this.child);
    this.child.stdout?.on('data', (d: Buffer) => {
      this.stdout += d.toString('latin1');
      this.scan();
      this.wake();
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString('utf8');
      this.wake();
    });
    this.exited = new Promise((r) =>
      this.child.once('exit', (code) => {
        tools.delete(this.child);
        this.wake();
        r(code);
      }),
    );
  }

  private scanned = 0;

  private scan(): void {
    for (;;) {
      const start = this.stdout.indexOf('MSG|', this.scanned);
      if (start === -1) return;
      const end = this.stdout.indexOf('|END', start);
      if (end === -1) return;
      const f = this.stdout.slice(start, end).split('|');
      this.lines.push({
        topic: f[1] ?? '',
        payload: Buffer.from(f[2] ?? '', 'hex'),
        qos: Number(f[3]),
        retain: f[4] === '1',
        userProps: f[5] ?? '',
        contentType: f[6] ?? '',
        responseTopic: f[7] ?? '',
      });
      this.scanned = end + 4;
    }
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  private async waitUntil(pred: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`mosquitto_sub: timeout waiting for ${what}; stdout: ${this.stdout} stderr: ${this.stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Resolves once the broker's SUBACK was printed. */
  subscribed(ms = 5000): Promise<void> {
    return this.waitUntil(() => /received SUBACK/i.test(this.stdout), ms, 'SUBACK');
  }

  async count(n: number, ms = 5000): Promise<SubLine[]> {
    await this.waitUntil(() => this.lines.length >= n, ms, `${n} messages`);
    return this.lines.slice(0, n);
  }

  /** Resolves with the exit code (mosquitto_sub -C n exits after n messages). */
  exit(ms = 5000): Promise<number | null> {
    return within(this.exited, ms, 'mosquitto_sub exit');
  }

  output(): string {
    return this.stdout + this.stderr;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------
// Raw MQTT over a bare socket

export interface RawPacketLog {
  packet: Packet;
  /** ms since the socket connected */
  at: number;
}

/**
 * A bare MQTT socket: writes hand-made bytes or generated packets, parses what the broker
 * answers with mqtt-packet, and reports whether and when the broker closed the connection.
 */
export class RawMqtt {
  readonly packets: RawPacketLog[] = [];
  parseError: string | undefined;
  closedAt: number | undefined;
  private readonly parser: ReturnType<typeof mqttPacket.parser>;
  private waiters: Array<() => void> = [];
  private readonly t0 = Date.now();
  private readonly closed: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    readonly version: MqttVersion,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.parser.on('packet', (p: Packet) => {
      this.packets.push({ packet: p, at: Date.now() - this.t0 });
    });
    this.parser.on('error', (e: Error) => {
      this.parseError = e.message;
    });
    socket.on('data', (d: Buffer) => {
      this.parser.parse(d);
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((r) =>
      socket.once('close', () => {
        this.closedAt = Date.now() - this.t0;
        this.wake();
        r();
      }),
    );
  }

  static async open(port: number, version: MqttVersion = 4): Promise<RawMqtt> {
    const socket = tcpConnect({ host: HOST, port });
    socket.setNoDelay(true);
    await within(
      new Promise<void>((resolveOpen, reject) => {
        socket.once('connect', () => resolveOpen());
        socket.once('error', reject);
      }),
      5000,
      `tcp connect ${port}`,
    );
    return new RawMqtt(socket, version);
  }

  /** Opens a socket, sends CONNECT (clean, keepalive 60 unless overridden) and awaits CONNACK 0. */
  static async connected(port: number, version: MqttVersion = 4, connect: Partial<ConnectFields> = {}): Promise<RawMqtt> {
    const raw = await RawMqtt.open(port, version);
    raw.send({ ...connectPacket(version), ...connect } as Packet);
    const ack = await raw.next('connack');
    const code = ack.cmd === 'connack' ? (ack.reasonCode ?? ack.returnCode) : undefined;
    if (code !== 0) throw new Error(`CONNACK code ${String(code)}`);
    return raw;
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  get isClosed(): boolean {
    return this.closedAt !== undefined;
  }

  /** Writes raw bytes or a packet generated for this socket's protocol version. */
  send(what: Buffer | Packet): void {
    const buf = Buffer.isBuffer(what) ? what : mqttPacket.generate(what, { protocolVersion: this.version === 3 ? 3 : this.version });
    this.socket.write(buf);
  }

  /** Waits for the next packet of `cmd` not yet taken by an earlier `next`. */
  async next(cmd: Packet['cmd'], ms = 5000): Promise<Packet> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.packets.findIndex((p, idx) => idx >= this.taken && p.packet.cmd === cmd);
      if (i !== -1) {
        this.taken = i + 1;
        const found = this.packets[i];
        if (found !== undefined) return found.packet;
      }
      if (this.isClosed) throw new Error(`closed while waiting for ${cmd}; got ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout after ${ms} ms waiting for ${cmd}; got ${this.describe()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  private taken = 0;

  /** Waits for the broker to close the socket; resolves with ms since connect, or rejects after `ms`. */
  async waitClosed(ms = 5000): Promise<number> {
    await within(this.closed, ms, `broker closing the connection; got ${this.describe()}`);
    return this.closedAt ?? -1;
  }

  /**
   * Sends PINGREQ and waits for PINGRESP: proves the broker read everything sent before it and
   * kept the connection. Rejects if the socket closes instead.
   */
  async ping(ms = 5000): Promise<void> {
    this.send({ cmd: 'pingreq' });
    await this.next('pingresp', ms);
  }

  /** Either a PINGRESP (connection alive) or a close: which one happened. */
  async pingOrClose(ms = 5000): Promise<'alive' | 'closed'> {
    if (this.isClosed) return 'closed';
    if (!this.socket.writable) return 'closed';
    this.send({ cmd: 'pingreq' });
    try {
      await this.next('pingresp', ms);
      return 'alive';
    } catch (err) {
      if (this.isClosed) return 'closed';
      throw err;
    }
  }

  /** Packets received of `cmd`. */
  all(cmd: Packet['cmd']): Packet[] {
    return this.packets.filter((p) => p.packet.cmd === cmd).map((p) => p.packet);
  }

  describe(): string {
    return JSON.stringify({
      packets: this.packets.map((p) => summarize(p.packet)),
      closed: this.isClosed,
      parseError: this.parseError,
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A short, JSON-friendly view of a packet for failure messages. */
export function summarize(p: Packet): Record<string, unknown> {
  const out: Record<string, unknown> = { cmd: p.cmd };
  if ('reasonCode' in p && p.reasonCode !== undefined) out['reasonCode'] = p.reasonCode;
  if ('returnCode' in p && p.returnCode !== undefined) out['returnCode'] = p.returnCode;
  if ('granted' in p) out['granted'] = p.granted;
  if ('topic' in p && p.topic !== null && p.topic !== undefined) out['topic'] = p.topic;
  if ('properties' in p && p.properties !== undefined) out['properties'] = p.properties;
  return out;
}

export interface ConnectFields {
  clientId: string;
  clean: boolean;
  keepalive: number;
  will: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean };
  properties: Record<string, unknown>;
}

/** A CONNECT packet for `version` with a unique client id. */
export function connectPacket(version: MqttVersion, fields: Partial<ConnectFields> = {}): Packet {
  return {
    cmd: 'connect',
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    clientId: uniqueId('raw'),
    clean: true,
    keepalive: 60,
    ...fields,
  } as Packet;
}

/** Hex string (spaces allowed) to bytes. */
export function hex(h: string): Buffer {
  return Buffer.from(h.replace(/\s+/g, ''), 'hex');
}

/** A PUBLISH (QoS 0, v3.1.1 layout) with a topic given as raw bytes: for invalid-UTF-8 cases. */
export function rawPublish(topic: Buffer, payload: Buffer, version: MqttVersion): Buffer {
  const props = version === 5 ? Buffer.from([0]) : Buffer.alloc(0);
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, props, payload]);
  return Buffer.concat([Buffer.from([0x30]), varint(body.length), body]);
}

/** MQTT variable byte integer. */
export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

// ---------------------------------------------------------------------------------------------

/** Ends every client, tool and broker this module started; call from afterAll. */
export async function stopAllMqtt(): Promise<void> {
  await closeAllClients();
  for (const t of tools) t.kill('SIGKILL');
  tools.clear();
  await Promise.all(
    [...mosquittos].map(
      (m) =>
        new Promise<void>((r) => {
          if (m.exitCode !== null || m.signalCode !== null) {
            r();
            return;
          }
          m.once('exit', () => r());
          m.kill('SIGKILL');
        }),
    ),
  );
  await stopAllServers();
}

process.once('exit', () => {
  for (const t of tools) t.kill('SIGKILL');
  for (const m of mosquittos) m.kill('SIGKILL');
});
