// Starts and stops the four MQTT brokers under test, each in its own process on free ports:
// Debian's mosquitto, Debian's nats-server with JetStream and its mqtt listener, aedes (npm)
// as a plain Node server, and a copy of our bundle with the same kind of config as nats-server.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT, freePort, serverCommand, spawnServer } from './server.mjs';
import { MqttConn } from './mqtt-wire.mjs';

export const MQTT_KINDS = ['mosquitto', 'nats-server', 'aedes', 'nats-edge'];
export const MOSQUITTO_BIN = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
const AEDES_SERVER = fileURLToPath(new URL('./mqtt-aedes-server.mjs', import.meta.url));

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
    return { ...serverCommand(kind, ['-c', conf], { nodeArgs: opts.nodeArgs, bundle: opts.edgeBundle }), cwd: dir };
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
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  let broker;
  try {
    broker = await spawnServer({
      kind,
      ...prepare(kind, dir, ports, opts),
      ready: () => answersConnect(ports.mqtt, 1000),
      notReady: `did not accept an MQTT CONNECT on port ${ports.mqtt}`,
      readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
      pollMs: 100,
    });
  } catch (err) {
    cleanup();
    throw err;
  }
  return {
    ...broker,
    port: ports.mqtt,
    /** SIGTERM, then SIGKILL after `graceMs`; resolves to the exit record once the directory is gone. */
    async stop(graceMs = 5000) {
      const exit = await broker.stop(graceMs);
      cleanup();
      return exit;
    },
  };
}
