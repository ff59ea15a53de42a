import { describe, expect, it } from 'vitest';
import { parseArgs, usage } from '../../src/config/cli.js';
import { CliError } from '../../src/config/errors.js';

function cliError(argv: string[]): CliError {
  try {
    parseArgs(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    return e as CliError;
  }
  throw new Error('expected a CliError');
}

describe('Go flag syntax', () => {
  it('takes one or two dashes, a separate value or =value', () => {
    for (const argv of [['-p', '4333'], ['--p', '4333'], ['-p=4333'], ['--port', '4333'], ['-port=4333'], ['--port=4333']]) {
      expect(parseArgs(argv).flags.port).toBe(4333);
    }
  });

  it('takes a negative number as the value of an int flag', () => {
    expect(parseArgs(['-p', '-1', '-m', '-1']).flags).toEqual({ port: -1, httpPort: -1 });
  });

  it('reads int values as Go does (0x, 0o, leading 0 = octal)', () => {
    expect(parseArgs(['-p', '0x10']).flags.port).toBe(16);
    expect(parseArgs(['-p', '010']).flags.port).toBe(8);
    expect(cliError(['-p', 'abc']).reason).toBe('invalid value "abc" for flag -p: parse error');
  });

  it('sets bool flags without a value and takes Go boolean words after =', () => {
    expect(parseArgs(['-D']).flags).toEqual({ debug: true });
    expect(parseArgs(['-T=false']).flags).toEqual({ logtime: false });
    expect(parseArgs(['--logtime=0', '--debug=T', '-V=true']).flags).toEqual({ logtime: false, debug: true, trace: true });
    expect(cliError(['-D=maybe']).reason).toBe('invalid boolean value "maybe" for -D: parse error');
  });

  it('knows -DV, -VV and -DVV as flags of their own', () => {
    expect(parseArgs(['-DV']).flags).toEqual({ debug: true, trace: true });
    expect(parseArgs(['-VV']).flags).toEqual({ trace: true });
    expect(parseArgs(['-DVV']).flags).toEqual({ debug: true, trace: true });
    expect(cliError(['-DT']).reason).toBe('flag provided but not defined: -DT');
  });

  it('fails on an unknown flag with Go words, the usage and exit code 2', () => {
    const e = cliError(['-x']);
    expect(e.reason).toBe('flag provided but not defined: -x');
    expect(e.message).toBe(`flag provided but not defined: -x\n\n${usage()}`);
    expect(e.exitCode).toBe(2);
    expect(cliError(['--bogus=1']).reason).toBe('flag provided but not defined: -bogus');
  });

  it('fails on a missing value and bad syntax', () => {
    expect(cliError(['-p']).reason).toBe('flag needs an argument: -p');
    expect(cliError(['---p', '1']).reason).toBe('bad flag syntax: ---p');
    expect(cliError(['-=x']).reason).toBe('bad flag syntax: -=x');
  });

  it('stops at -- and at the first non-flag; only version/help words are accepted there', () => {
    expect(parseArgs(['-p', '1', '--']).flags).toEqual({ port: 1 });
    expect(parseArgs(['-p', '1', 'version']).action).toBe('version');
    expect(parseArgs(['help']).action).toBe('help');
    const e = cliError(['-p', '1', 'foo', '-D']);
    expect(e.message).toBe('unrecognized command: "foo"');
    expect(e.exitCode).toBe(1);
  });

  it('lets the last occurrence of a flag win', () => {
    expect(parseArgs(['-p', '1', '--port', '2']).flags.port).toBe(2);
  });
});

describe('every flag', () => {
  it('maps the server, logging, JetStream, auth and TLS flags', () => {
    const { flags, warnings } = parseArgs([
      '-a', '127.0.0.1',
      '-n', 'edge',
      '-P', '/run/x.pid',
      '-m', '8222',
      '-c', 'x.conf',
      '--ports_file_dir', '/tmp',
      '-l', '/var/log/x',
      '-T',
      '--logtime_utc',
      '-js',
      '-sd', '/data',
      '--user', 'u',
      '--pass', 'p',
      '--auth', 't',
      '--tls',
      '--tlscert', 'c.pem',
      '--tlskey', 'k.pem',
      '--tlsverify',
      '--tlscacert', 'ca.pem',
      '--profile', 'rpi-4',
    ]);
    expect(warnings).toEqual([]);
    expect(flags).toEqual({
      host: '127.0.0.1',
      serverName: 'edge',
      pidFile: '/run/x.pid',
      httpPort: 8222,
      configFile: 'x.conf',
      portsFileDir: '/tmp',
      logFile: '/var/log/x',
      logtime: true,
      logtimeUtc: true,
      jetstream: true,
      storeDir: '/data',
      user: 'u',
      pass: 'p',
      auth: 't',
      tls: true,
      tlsCert: 'c.pem',
      tlsKey: 'k.pem',
      tlsVerify: true,
      tlsCaCert: 'ca.pem',
      profile: 'rpi-4',
    });
  });

  it('takes the long aliases', () => {
    expect(parseArgs(['--addr', 'a', '--name', 'n', '--pid', 'p', '--http_port', '1', '--config', 'c', '--log', 'l', '--debug', '--trace', '--jetstream', '--store_dir', 's']).flags).toEqual({
      host: 'a',
      serverName: 'n',
      pidFile: 'p',
      httpPort: 1,
      configFile: 'c',
      logFile: 'l',
      debug: true,
      trace: true,
      jetstream: true,
      storeDir: 's',
    });
    expect(parseArgs(['--net', 'b', '--server_name', 'm']).flags).toEqual({ host: 'b', serverName: 'm' });
  });

  it('warns about and ignores the cluster and other unsupported flags, consuming their values', () => {
    const r = parseArgs(['--cluster', 'nats://0.0.0.0:6222', '--routes', 'x', '--no_advertise', '--connect_retries', '3', '--client_advertise', 'y', '-ms', '8443', '-s', '-r', 'udp://h:514', '-p', '4333']);
    expect(r.flags).toEqual({ port: 4333 });
    expect(r.warnings).toEqual([
      'flag --cluster is a cluster option; nats-edge has no clustering (use a leafnode) and ignores it',
      'flag --routes is a cluster option; nats-edge has no clustering (use a leafnode) and ignores it',
      'flag --no_advertise is a cluster option; nats-edge has no clustering (use a leafnode) and ignores it',
      'flag --connect_retries is a cluster option; nats-edge has no clustering (use a leafnode) and ignores it',
      'flag --client_advertise is not supported by nats-edge and is ignored',
      'flag -ms (monitoring over TLS) is not supported by nats-edge and is ignored',
      'flag -s is not supported by nats-edge and is ignored',
      'flag -r is not supported by nats-edge and is ignored',
    ]);
  });
});

describe('actions', () => {
  it('defaults to run', () => {
    expect(parseArgs([]).action).toBe('run');
  });

  it('reads help and version, version first', () => {
    expect(parseArgs(['-h']).action).toBe('help');
    expect(parseArgs(['--help']).action).toBe('help');
    expect(parseArgs(['-v']).action).toBe('version');
    expect(parseArgs(['--version', '--help']).action).toBe('version');
  });

  it('reads -t, which needs -c', () => {
    expect(parseArgs(['-t', '-c', 'x.conf']).action).toBe('test-config');
    const e = cliError(['-t']);
    expect(e.message).toBe('must specify [-c, --config] option to check configuration file syntax');
  });

  it('reads --signal cmd[=pid]', () => {
    expect(parseArgs(['--signal', 'reload=123']).action).toEqual({ signal: 'reload', pid: '123' });
    expect(parseArgs(['-sl', 'ldm=/run/nats.pid']).action).toEqual({ signal: 'ldm', pid: '/run/nats.pid' });
    expect(parseArgs(['-sl=quit']).action).toEqual({ signal: 'quit', pid: '' });
    for (const s of ['stop', 'quit', 'term', 'reopen', 'reload', 'ldm']) expect(parseArgs(['-sl', s]).action).toEqual({ signal: s, pid: '' });
    expect(cliError(['-sl', 'foo']).message).toBe('unknown signal "foo"');
  });
});

describe('usage', () => {
  it('lists our flags in nats-server layout', () => {
    const u = usage();
    expect(u.startsWith('Usage: nats-edge [options]\n\nServer Options:\n')).toBe(true);
    for (const f of ['-a, --addr, --net', '-p, --port', '-P, --pid', '-m, --http_port', '-c, --config', '-sl,--signal', '--ports_file_dir', '--profile <name>', '-l, --log', '-T, --logtime', '-DVV', '-js, --jetstream', '-sd, --store_dir', '--user', '--pass', '--auth', '--tlsverify', '--tlscacert', '-h, --help', '-v, --version']) {
      expect(u).toContain(f);
    }
    expect(u).toContain('rpi-zero-2w');
  });
});
