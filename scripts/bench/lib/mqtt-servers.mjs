// Starts and stops the four MQTT brokers under test, each in its own process on free ports:
// Debian's mosquitto, Debian's nats-server with JetStream and its mqtt listener, aedes (npm)
// as a plain Node server, and a copy of our bundle with the same kind of config as nats-server.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATS_SERVER_BIN, REPO_ROOT, describeExit, freePort, tail } from './server.mjs';
import { MqttConn } from './mqtt-wire.mjs';

export const MQTT_KINDS = ['mosquitto', 'nats-server', 'aedes', 'nats-edge'];
export const MOSQUITTO_BIN = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
const AEDES_SERVER = fileURLToPath(new URL('./mqtt-aedes-server.mjs', import.meta.url));
const LOG_LIMIT = 256 * 1024;

/** True once an MQTT CONNECT on `port` gets an accepting CONNACK. */
export async function answersConnect(port, timeoutMs = 2000) {
  let conn;
  try {
    conn = await MqttConn.open(port, { clientId: `bench-probe-${process.pid}`, timeoutMs });
    return true;
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

/** Config files and command line for `kind`, written into `dir`. */
function prepare(kind, dir, ports, opts) {
  if (kind === 'mosquitto') {
    // Defaults otherwise (max_inflight_messages 20, max_queued_messages 1000): the Debian package as shipped.
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(conf, `listener ${ports.mqtt} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n`);
    return { cmd: MOSQUITTO_BIN, args: ['-c', conf], cwd: dir };
  }
  if (kind === 'nats-server' || kind === 'nats-edge') {
    const conf = join(dir, 'server.conf');
    writeFileSync(
      conf,
      [
        `server_name: bench_${kind.replace('-', '_')}`,
        `listen: 127.0.0.1:${ports.nats}`,
        `http: ${ports.http}`,
        `jetstream { store_dir: "${join(dir, 'store')}" }`,
        `mqtt { port: ${ports.mqtt} }`,
        '',
      ].join('\n'),
    );
    if (kind === 'nats-server') return { cmd: NATS_SERVER_BIN, args: ['-c', conf], cwd: dir };
    if (!existsSync(opts.edgeBundle)) throw new Error(`${opts.edgeBundle} is missing`);
    return { cmd: process.execPath, args: [...(opts.nodeArgs ?? []), opts.edgeBundle, '-c', conf], cwd: dir };
  }
  if (kind === 'aedes') return { cmd: process.execPath, args: [...(opts.nodeArgs ?? []), AEDES_SERVER, String(ports.mqtt)], cwd: REPO_ROOT };
  throw new Error(`unknown broker ${kind}`);
}

/**
 * Spawns broker `kind` in a fresh temporary directory and waits until it accepts an MQTT
 * CONNECT. opts.edgeBundle: the nats-edge bundle to run; opts.nodeArgs: node flags for the
 * Node brokers (e.g. --cpu-prof). Returns { kind, port (MQTT), pid, command, alive,
 * exitInfo, logs, stop(graceMs) }; stop removes the directory.
 */
export async function startBroker(kind, opts = {}) {
  const dir = mkdtempSync(join(opts.dir ?? tmpdir(), `bench-mqtt-${kind}-`));
  const ports = { mqtt: await freePort(), nats: await freePort(), http: await freePort() };
  const { cmd, args, cwd } = prepare(kind, dir, ports, opts);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  let log = '';
  const keep = (d) => {
    log += d.toString();
    if (log.length > LOG_LIMIT) log = log.slice(-LOG_LIMIT);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exit = null;
  const exited = new Promise((res) => {
    proc.once('exit', (code, signal) => {
      exit = { code, signal };
      res(exit);
    });
    proc.once('error', (err) => {
      exit = { code: null, signal: null, error: err.message };
      res(exit);
    });
  });
  const cleanup = () => rmSync(dir, { recursive: true, force: true });

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (exit !== null) {
      cleanup();
      throw new Error(`${kind} exited during start (${describeExit(exit)}):\n${tail(log)}`);
    }
    if (await answersConnect(ports.mqtt, 1000)) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await exited;
      cleanup();
      throw new Error(`${kind} did not accept an MQTT CONNECT on port ${ports.mqtt}:\n${tail(log)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    kind,
    port: ports.mqtt,
    pid: proc.pid,
    command: [cmd, ...args].join(' '),
    alive: () => exit === null,
    exitInfo: () => exit,
    logs: () => log,
    /** SIGTERM, then SIGKILL after `graceMs`; resolves to the exit record. */
    async stop(graceMs = 5000) {
      if (exit === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      cleanup();
      return exit;
    },
  };
}
