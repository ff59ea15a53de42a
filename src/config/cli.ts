/**
 * nats-server's command line, read with the rules of Go's flag package (which nats-server uses):
 * one or two dashes, `-p 4222` or `-p=4222`, bool flags without a value (`-D`) or with `=`
 * (`-T=false`), parsing stops at the first non-flag argument or `--`. nats-server defines the
 * combined flags -DV, -VV, -DVV as flags of their own, not as bundles of letters.
 */
import { CliError } from './errors.js';
import { profileNames } from './profiles.js';

/** What to do after reading the arguments. A signal's pid is '' when none was given. */
export type CliAction = 'run' | 'version' | 'help' | 'test-config' | { signal: string; pid: string };

/** Flags given on the command line; absent = not given (so the config file keeps its say). */
export interface CliFlags {
  host?: string;
  port?: number;
  serverName?: string;
  pidFile?: string;
  httpPort?: number;
  configFile?: string;
  portsFileDir?: string;
  /** Our --profile: a firmware profile name (nats-server's --profile is a pprof port). */
  profile?: string;
  logFile?: string;
  logtime?: boolean;
  logtimeUtc?: boolean;
  debug?: boolean;
  trace?: boolean;
  jetstream?: boolean;
  storeDir?: string;
  user?: string;
  pass?: string;
  auth?: string;
  tls?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsVerify?: boolean;
  tlsCaCert?: string;
}

export interface ParsedArgs {
  flags: CliFlags;
  action: CliAction;
  warnings: string[];
}

/** Signals `--signal` knows (nats-server's names). */
export const SIGNAL_COMMANDS: readonly string[] = ['stop', 'quit', 'term', 'reopen', 'reload', 'ldm'];

type FlagKind = 'bool' | 'string' | 'int';

interface State {
  flags: CliFlags;
  warnings: string[];
  testConfig: boolean;
  help: boolean;
  version: boolean;
  signal?: string;
}

interface FlagDef {
  kind: FlagKind;
  apply(st: State, value: string | number | boolean, shownName: string): void;
}

function unsupported(kind: FlagKind, what = 'is not supported by nats-edge and is ignored'): FlagDef {
  return {
    kind,
    apply(st, _v, shown) {
      st.warnings.push(`flag ${shown} ${what}`);
    },
  };
}

function def<K extends keyof CliFlags>(kind: FlagKind, key: K): FlagDef {
  return {
    kind,
    apply(st, v) {
      (st.flags as Record<string, unknown>)[key] = v;
    },
  };
}

const FLAGS: ReadonlyMap<string, FlagDef> = (() => {
  const m = new Map<string, FlagDef>();
  const add = (names: string[], d: FlagDef): void => {
    for (const n of names) m.set(n, d);
  };
  add(['a', 'addr', 'net'], def('string', 'host'));
  add(['p', 'port'], def('int', 'port'));
  add(['n', 'name', 'server_name'], def('string', 'serverName'));
  add(['P', 'pid'], def('string', 'pidFile'));
  add(['m', 'http_port'], def('int', 'httpPort'));
  add(['ms', 'https_port'], unsupported('int', '(monitoring over TLS) is not supported by nats-edge and is ignored'));
  add(['c', 'config'], def('string', 'configFile'));
  add(['t'], { kind: 'bool', apply: (st, v) => void (st.testConfig = v === true) });
  add(['sl', 'signal'], { kind: 'string', apply: (st, v) => void (st.signal = String(v)) });
  add(['client_advertise'], unsupported('string'));
  add(['ports_file_dir'], def('string', 'portsFileDir'));
  add(['profile'], def('string', 'profile'));

  add(['l', 'log'], def('string', 'logFile'));
  add(['T', 'logtime'], def('bool', 'logtime'));
  add(['logtime_utc'], def('bool', 'logtimeUtc'));
  add(['s', 'syslog'], unsupported('bool'));
  add(['r', 'remote_syslog'], unsupported('string'));
  add(['D', 'debug'], def('bool', 'debug'));
  add(['V', 'trace'], def('bool', 'trace'));
  add(['VV'], def('bool', 'trace'));
  const debugAndTrace: FlagDef = {
    kind: 'bool',
    apply(st, v) {
      st.flags.debug = v === true;
      st.flags.trace = v === true;
    },
  };
  add(['DV', 'DVV'], debugAndTrace);
  add(['log_size_limit'], unsupported('int'));
  add(['max_traced_msg_len'], unsupported('int'));

  add(['js', 'jetstream'], def('bool', 'jetstream'));
  add(['sd', 'store_dir'], def('string', 'storeDir'));

  add(['user'], def('string', 'user'));
  add(['pass'], def('string', 'pass'));
  add(['auth'], def('string', 'auth'));

  add(['tls'], def('bool', 'tls'));
  add(['tlscert'], def('string', 'tlsCert'));
  add(['tlskey'], def('string', 'tlsKey'));
  add(['tlsverify'], def('bool', 'tlsVerify'));
  add(['tlscacert'], def('string', 'tlsCaCert'));

  const cluster = (kind: FlagKind): FlagDef => unsupported(kind, 'is a cluster option; nats-edge has no clustering (use a leafnode) and ignores it');
  add(['routes', 'cluster', 'cluster_name', 'cluster_advertise', 'cluster_listen'], cluster('string'));
  add(['no_advertise'], cluster('bool'));
  add(['connect_retries'], cluster('int'));

  add(['h', 'help', 'help_tls'], { kind: 'bool', apply: (st, v) => void (st.help = v === true) });
  add(['v', 'version'], { kind: 'bool', apply: (st, v) => void (st.version = v === true) });
  return m;
})();

/** Go's strconv.ParseBool. */
function goBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)) return false;
  return undefined;
}

/** Go's strconv.ParseInt(s, 0, 64): decimal, 0x.., 0o.., 0b.., and a leading 0 means octal. */
function goInt(s: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (m === null) return undefined;
  const body = m[2]!;
  let n: number;
  if (/^0[xX]/.test(body)) n = parseInt(body.slice(2), 16);
  else if (/^0[oO]/.test(body)) n = parseInt(body.slice(2), 8);
  else if (/^0[bB]/.test(body)) n = parseInt(body.slice(2), 2);
  else if (body.length > 1 && body.startsWith('0')) n = parseInt(body.slice(1), 8);
  else n = parseInt(body, 10);
  if (!Number.isSafeInteger(n)) return undefined;
  return m[1] === '-' ? -n : n;
}

/** Reads argv (without node and the script path). Throws CliError on a bad command line. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const st: State = { flags: {}, warnings: [], testConfig: false, help: false, version: false };
  let k = 0;
  for (; k < argv.length; k++) {
    const arg = argv[k]!;
    if (arg.length < 2 || arg[0] !== '-') break;
    let dashes = 1;
    if (arg[1] === '-') {
      dashes = 2;
      if (arg.length === 2) {
        k++;
        break;
      }
    }
    let name = arg.slice(dashes);
    if (name.length === 0 || name[0] === '-' || name[0] === '=') throw new CliError(`bad flag syntax: ${arg}`, usage());
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const flag = FLAGS.get(name);
    if (flag === undefined) throw new CliError(`flag provided but not defined: -${name}`, usage());
    const shown = arg.slice(0, dashes) + name;
    if (flag.kind === 'bool') {
      const b = value === undefined ? true : goBool(value);
      if (b === undefined) throw new CliError(`invalid boolean value "${value}" for -${name}: parse error`, usage());
      flag.apply(st, b, shown);
      continue;
    }
    if (value === undefined) {
      if (k + 1 >= argv.length) throw new CliError(`flag needs an argument: -${name}`, usage());
      value = argv[++k]!;
    }
    if (flag.kind === 'int') {
      const n = goInt(value);
      if (n === undefined) throw new CliError(`invalid value "${value}" for flag -${name}: parse error`, usage());
      flag.apply(st, n, shown);
    } else {
      flag.apply(st, value, shown);
    }
  }

  // nats-server accepts the words `version` and `help` after the flags, nothing else.
  if (k < argv.length) {
    const word = argv[k]!;
    const lower = word.toLowerCase();
    if (lower === 'version') st.version = true;
    else if (lower === 'help') st.help = true;
    else throw new CliError(`unrecognized command: "${word}"`, undefined, 1);
  }

  let action: CliAction = 'run';
  if (st.version) action = 'version';
  else if (st.help) action = 'help';
  else if (st.signal !== undefined) action = parseSignal(st.signal);
  else if (st.testConfig) {
    if (st.flags.configFile === undefined) {
      throw new CliError('must specify [-c, --config] option to check configuration file syntax', undefined, 1);
    }
    action = 'test-config';
  }
  return { flags: st.flags, action, warnings: st.warnings };
}

function parseSignal(spec: string): { signal: string; pid: string } {
  const parts = spec.split('=');
  if (parts.length > 2) throw new CliError(`invalid signal parameters: ${JSON.stringify(parts.slice(2))}`, undefined, 1);
  const signal = parts[0]!;
  if (!SIGNAL_COMMANDS.includes(signal)) throw new CliError(`unknown signal "${signal}"`, undefined, 1);
  return { signal, pid: parts[1] ?? '' };
}

/** The --help text, laid out as nats-server's. */
export function usage(): string {
  return `Usage: nats-edge [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222, -1 = random)
    -n, --name
        --server_name <server_name>  Server name (default: the server id)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring (-1 = random)
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to a nats-edge process (ldm, stop, quit, term, reopen, reload)
                                     <pid> is a PID (e.g. 1) or the path to a PID file (e.g. /run/nats-edge.pid)
        --ports_file_dir <dir>       Write a ports file in this directory (<executable_name>_<pid>.ports)
        --profile <name>             Firmware profile: ${profileNames().join(', ')}; default: picked from the board (/proc/device-tree/model and memory), "none" for no profile

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
        --logtime_utc                Timestamps in UTC instead of local time
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Same as --trace (nats-edge has no system account to trace)
    -DV                              Debug and trace
    -DVV                             Debug and trace

JetStream Options:
    -js, --jetstream                 Enable JetStream
    -sd, --store_dir <dir>           Storage directory

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Accepted for compatibility with nats-server and ignored (with a warning):
        --client_advertise, -ms/--https_port, -s/--syslog, -r/--remote_syslog,
        --log_size_limit, --max_traced_msg_len, --routes, --cluster, --cluster_name,
        --cluster_advertise, --cluster_listen, --no_advertise, --connect_retries

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
`;
}
