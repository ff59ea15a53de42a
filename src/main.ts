import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { join } from 'node:path';
import v8 from 'node:v8';
import { detectBoard, heapFlagsWarning, readBoard } from './config/board.js';
import { ConfigError } from './config/errors.js';
import { loadOptions, usage } from './config/load.js';
import type { ServerOptions } from './config/options.js';
import { JetStreamStartError } from './jetstream/index.js';
import { Logger } from './log.js';
import { parseMqttConfig } from './mqtt/config.js';
import { Server } from './server.js';
import { NATS_EDGE_VERSION, NATS_SERVER_LEVEL } from './version.js';
import { parseWebsocketConfig } from './ws/config.js';

/** CLI entry: nats-server's flags and config, then run until a signal says stop. */

const SIGNALS: Record<string, NodeJS.Signals> = {
  stop: 'SIGKILL',
  quit: 'SIGINT',
  term: 'SIGTERM',
  reopen: 'SIGUSR1',
  reload: 'SIGHUP',
  ldm: 'SIGUSR2',
};

function sendSignal(cmd: string, pidArg: string): number {
  const sig = SIGNALS[cmd];
  if (sig === undefined) {
    process.stderr.write(`nats-edge: unknown signal "${cmd}"\n`);
    return 1;
  }
  let pidText = pidArg;
  if (pidText !== '' && !/^\d+$/.test(pidText)) {
    try {
      pidText = readFileSync(pidText, 'utf8').trim();
    } catch (err) {
      process.stderr.write(`nats-edge: could not read pid file: ${(err as Error).message}\n`);
      return 1;
    }
  }
  if (!/^\d+$/.test(pidText)) {
    process.stderr.write('nats-edge: --signal needs a PID or a PID file: --signal reload=<pid|file>\n');
    return 1;
  }
  try {
    process.kill(Number(pidText), sig);
  } catch (err) {
    process.stderr.write(`nats-edge: ${(err as Error).message}\n`);
    return 1;
  }
  return 0;
}

/**
 * With NODE_COMPILE_CACHE set (the release's launcher does under systemd), Node >= 22.10 writes
 * the compiled bundle now rather than at exit: a first start that ends in a crash or SIGKILL
 * still leaves the cache for the next one. Absent on Node 20, where nothing is cached.
 */
function flushCompileCache(): void {
  (nodeModule as typeof nodeModule & { flushCompileCache?: () => void }).flushCompileCache?.();
}

/** Options, or the config error's text (file:line: what is wrong). */
function load(argv: string[]): ReturnType<typeof loadOptions> | string {
  try {
    return loadOptions({
      argv,
      env: process.env,
      detectProfile: () => {
        const b = readBoard();
        return detectBoard(b.model, b.memTotalBytes);
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
}

function writeRuntimeFiles(o: ServerOptions, server: Server): void {
  if (o.pidFile !== undefined) writeFileSync(o.pidFile, String(process.pid));
  if (o.portsFileDir !== undefined) {
    const ports = {
      nats: [`nats://${o.host}:${server.clientPort()}`],
      ...(o.httpPort !== undefined ? { monitoring: [`http://${o.httpHost}:${server.httpPort()}`] } : {}),
      ...(server.websocketUrl() !== '' ? { websocket: [server.websocketUrl()] } : {}),
    };
    writeFileSync(join(o.portsFileDir, `nats-edge_${process.pid}.ports`), JSON.stringify(ports));
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const loaded = load(argv);
  if (typeof loaded === 'string') {
    process.stderr.write(`nats-edge: ${loaded}\n`);
    return 1;
  }
  const { options, warnings, action } = loaded;
  if (action === 'version') {
    process.stdout.write(`nats-edge: v${NATS_EDGE_VERSION} (nats-server ${NATS_SERVER_LEVEL} protocol level)\n`);
    return 0;
  }
  if (action === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  if (typeof action === 'object') return sendSignal(action.signal, action.pid);
  const log = new Logger(options.logging);
  for (const w of warnings) log.warn(w);
  if (options.blocks.mqtt !== undefined || options.blocks.websocket !== undefined) {
    try {
      if (options.blocks.mqtt !== undefined) parseMqttConfig(options.blocks.mqtt, options);
      // Imported only with a leafnodes block: it brings nkeys and tweetnacl, whose setup would
      // cost every start ~10 ms.
      if (options.blocks.leafnodes !== undefined) (await import('./leaf/config.js')).parseLeafConfig(options.blocks.leafnodes, options);
      if (options.blocks.websocket !== undefined && parseWebsocketConfig(options.blocks.websocket, options) === null) {
        log.warn(`${options.blocks.websocket.where}: the websocket block has no port: websocket listener not started`);
      }
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`nats-edge: ${err.message}\n`);
      return 1;
    }
  }
  if (action === 'test-config') {
    process.stdout.write(`nats-edge: configuration file ${options.configFile ?? ''} is valid\n`);
    return 0;
  }

  log.info(`Starting nats-edge`);
  log.info(`  Version:  ${NATS_EDGE_VERSION} (protocol level of nats-server ${NATS_SERVER_LEVEL})`);
  log.info(`  Node:     ${process.version}`);
  if (options.configFile !== undefined) log.info(`  Using configuration file: ${options.configFile}`);
  if (loaded.board !== undefined) log.info(`  Board:    ${loaded.board.why}`);
  if (options.profile !== undefined) {
    log.info(`  Firmware profile: ${options.profile.name} (${options.profile.description})`);
    const heapWarning = heapFlagsWarning(options.profile, v8.getHeapStatistics().heap_size_limit);
    if (heapWarning !== null) log.warn(heapWarning);
  }

  const server = new Server(options, log);
  try {
    await server.startServer();
  } catch (err) {
    log.log('FTL', err instanceof JetStreamStartError ? err.message : `Error listening: ${(err as Error).message}`);
    return 1;
  }
  writeRuntimeFiles(options, server);
  log.info(`Server id is ${server.serverId}`);
  log.info(`Server name is ${server.serverName}`);
  flushCompileCache();

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.debug(`Trapped "${signal}" signal`);
    void server.shutdown().then(() => {
      if (options.pidFile !== undefined) rmSync(options.pidFile, { force: true });
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('terminated'));
  process.on('SIGINT', () => stop('interrupt'));
  process.on('SIGHUP', () => {
    log.debug('Trapped "hangup" signal');
    const next = load(argv);
    if (typeof next === 'string') {
      log.error(`Failed to reload server configuration, keeping the running one: ${next.replace(/\n/g, '; ')}`);
      return;
    }
    for (const w of next.warnings) log.warn(w);
    server.reload(next.options);
  });
  process.on('SIGUSR1', () => log.info('File log re-open ignored, not a file logger'));
  process.on('SIGUSR2', () => {
    void server.enterLameDuck().then(() => stop('lame duck'));
  });
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`nats-edge: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
