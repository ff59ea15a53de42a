import bcrypt from 'bcryptjs';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { AuthorizationOptions, Permissions } from '../../src/config/options.js';
import { Authenticator, isBcryptHash } from '../../src/nats/auth.js';
import type { AuthResult, ConnectionType, Credentials } from '../../src/nats/auth.js';
import { RawClient } from '../helpers/raw-client.js';
import { startServer, stopAllServers } from '../helpers/servers.js';

// Low cost keeps the tests fast; the cost does not change what is checked.
const PB_2B = bcrypt.hashSync('pb', 4); // bcryptjs writes $2b$
const PB_2A = `$2a$${PB_2B.slice(4)}`; // same computation, other minor
const PB_2X = `$2x$${PB_2B.slice(4)}`;
const PB_2Y = `$2y$${PB_2B.slice(4)}`;

const DEFAULT_PERMS: Permissions = { publish: { allow: ['dflt.>'], deny: [] } };
const OWN_PERMS: Permissions = { publish: { allow: ['own.>'], deny: [] } };

function authz(a: Partial<AuthorizationOptions>): AuthorizationOptions {
  return { timeoutMs: 2000, ...a };
}

/** null, or who the connection became and whether it may publish `probe`. */
function summary(r: AuthResult | null, probe = 'dflt.x'): string {
  if (r === null) return 'VIOLATION';
  const p = r.permissions === undefined ? 'free' : r.permissions.canPublish(probe) ? 'pub-ok' : 'pub-denied';
  return `${r.user ?? '-'}/${p}`;
}

async function run(a: Authenticator, creds: Credentials, type: ConnectionType = 'STANDARD'): Promise<string> {
  return summary(await a.authenticate(creds, type));
}

describe('isBcryptHash', () => {
  const table: [string, boolean][] = [
    [PB_2A, true],
    [PB_2B, true],
    [PB_2X, true],
    [PB_2Y, true],
    ['$2a$11$x', true],
    ['$2c$04$abc', false],
    ['$2a$1$abc', false],
    ['$2a$111$abc', false],
    ['$2$04$abc', false],
    ['2a$04$abc', false],
    ['plain', false],
    ['', false],
  ];
  it('table', () => {
    for (const [s, want] of table) expect([s, isBcryptHash(s)]).toEqual([s, want]);
  });
});

describe('no auth configured', () => {
  it('everyone is admitted without user or permissions', async () => {
    for (const a of [new Authenticator({}), new Authenticator({ authorization: authz({}) })]) {
      expect(a.configured).toBe(false);
      expect(a.required).toBe(false);
      expect(await run(a, {})).toBe('-/free');
      expect(await run(a, { user: 'x', pass: 'y', authToken: 'z' })).toBe('-/free');
      expect(summary(a.authenticateWithoutConnect('STANDARD'))).toBe('-/free');
      expect(a.permissionsFor('x')).toBeUndefined();
    }
  });
  it('timeout defaults to 2 s, else from the block', () => {
    expect(new Authenticator({}).timeoutMs).toBe(2000);
    expect(new Authenticator({ authorization: authz({ token: 't', timeoutMs: 500 }) }).timeoutMs).toBe(500);
  });
});

describe('token', () => {
  const table: [string, string, string][] = [
    ['plain', 's3cr3t', 's3cr3t'],
    ['$2a$', PB_2A, 'pb'],
    ['$2b$', PB_2B, 'pb'],
    ['$2x$', PB_2X, 'pb'],
    ['$2y$', PB_2Y, 'pb'],
  ];
  for (const [name, configured, good] of table) {
    it(name, async () => {
      const a = new Authenticator({ authorization: authz({ token: configured }) });
      expect(a.configured).toBe(true);
      expect(a.required).toBe(true);
      expect(await run(a, { authToken: good })).toBe('-/free');
      expect(await run(a, { authToken: good + 'x' })).toBe('VIOLATION');
      expect(await run(a, { authToken: good.slice(0, -1) })).toBe('VIOLATION');
      expect(await run(a, { authToken: '' })).toBe('VIOLATION');
      expect(await run(a, {})).toBe('VIOLATION');
      // the token goes in auth_token only
      expect(await run(a, { user: 'x', pass: good })).toBe('VIOLATION');
      expect(await run(a, { user: good, pass: good })).toBe('VIOLATION');
      expect(a.authenticateWithoutConnect('STANDARD')).toBeNull();
    });
  }
  it('a configured hash sent verbatim does not match', async () => {
    const a = new Authenticator({ authorization: authz({ token: PB_2A }) });
    expect(await run(a, { authToken: PB_2A })).toBe('VIOLATION');
  });
  it('malformed bcrypt-looking secrets never match and never throw', async () => {
    for (const bad of ['$2a$04$short', `$2a$03$${PB_2B.slice(7)}`, `$2a$99$${PB_2B.slice(7)}`, `$2a$04$${'!'.repeat(53)}`]) {
      const a = new Authenticator({ authorization: authz({ token: bad }) });
      expect(await run(a, { authToken: 'pb' })).toBe('VIOLATION');
      expect(await run(a, { authToken: bad })).toBe('VIOLATION');
    }
  });
});

describe('single user / password', () => {
  for (const [name, password] of [
    ['plain', 'pw'],
    ['bcrypt', `$2a$04$${bcrypt.hashSync('pw', 4).slice(7)}`],
  ] as const) {
    it(name, async () => {
      // nats-server ignores the block's permissions for the single user (checked live below)
      const a = new Authenticator({ authorization: authz({ user: 'u', password, defaultPermissions: DEFAULT_PERMS }) });
      expect(await run(a, { user: 'u', pass: 'pw' }, 'STANDARD')).toBe('u/free');
      expect(await run(a, { user: 'u', pass: 'pw' }, 'MQTT')).toBe('u/free');
      expect(await run(a, { user: 'u', pass: 'px' })).toBe('VIOLATION');
      expect(await run(a, { user: 'U', pass: 'pw' })).toBe('VIOLATION');
      expect(await run(a, { pass: 'pw' })).toBe('VIOLATION');
      expect(await run(a, { user: 'u' })).toBe('VIOLATION');
      expect(await run(a, { authToken: 'pw' })).toBe('VIOLATION');
      expect(a.permissionsFor('u')).toBeUndefined();
      expect(a.permissionsFor('v')).toBeNull();
    });
  }
});

describe('users', () => {
  const users: AuthorizationOptions = authz({
    users: [
      { user: 'alice', password: 'pa' },
      { user: 'bob', password: PB_2A, permissions: OWN_PERMS },
      { user: 'mq', password: 'pm', allowedConnectionTypes: ['mqtt', 'WEBSOCKET'] },
      { user: 'leaf', password: 'pl', allowedConnectionTypes: ['LEAFNODE'] },
    ],
    defaultPermissions: DEFAULT_PERMS,
  });
  const table: [Credentials, ConnectionType, string][] = [
    [{ user: 'alice', pass: 'pa' }, 'STANDARD', 'alice/pub-ok'], // default permissions
    [{ user: 'alice', pass: 'pa', authToken: 'ignored' }, 'STANDARD', 'alice/pub-ok'],
    [{ user: 'alice', pass: 'pA' }, 'STANDARD', 'VIOLATION'],
    [{ user: 'alice', pass: '' }, 'STANDARD', 'VIOLATION'],
    [{ user: 'alice' }, 'STANDARD', 'VIOLATION'],
    [{ user: 'bob', pass: 'pb' }, 'STANDARD', 'bob/pub-denied'], // own permissions replace the default
    [{ user: 'bob', pass: 'pB' }, 'STANDARD', 'VIOLATION'],
    [{ user: 'bob', pass: PB_2A }, 'STANDARD', 'VIOLATION'],
    [{ user: 'mq', pass: 'pm' }, 'STANDARD', 'VIOLATION'], // connection type
    [{ user: 'mq', pass: 'pm' }, 'MQTT', 'mq/pub-ok'], // lower-case type in config still counts
    [{ user: 'mq', pass: 'pm' }, 'WEBSOCKET', 'mq/pub-ok'],
    [{ user: 'mq', pass: 'pm' }, 'LEAFNODE', 'VIOLATION'],
    [{ user: 'leaf', pass: 'pl' }, 'LEAFNODE', 'leaf/pub-ok'],
    [{ user: 'zz', pass: 'pa' }, 'STANDARD', 'VIOLATION'],
    [{ pass: 'pa' }, 'STANDARD', 'VIOLATION'],
    [{ authToken: 'pa' }, 'STANDARD', 'VIOLATION'],
    [{}, 'STANDARD', 'VIOLATION'],
  ];
  it('table', async () => {
    const a = new Authenticator({ authorization: users });
    expect([a.configured, a.required]).toEqual([true, true]);
    for (const [creds, type, want] of table) {
      expect([creds, type, await run(a, creds, type)]).toEqual([creds, type, want]);
    }
    expect(a.authenticateWithoutConnect('STANDARD')).toBeNull();
  });

  it('every connection gets its own CompiledPermissions', async () => {
    const a = new Authenticator({ authorization: authz({ users: [{ user: 'r', password: 'p', permissions: { allowResponses: { max: 1, expiresMs: 0 } } }] }) });
    const one = (await a.authenticate({ user: 'r', pass: 'p' }, 'STANDARD'))!.permissions!;
    const two = (await a.authenticate({ user: 'r', pass: 'p' }, 'STANDARD'))!.permissions!;
    expect(one).not.toBe(two);
    one.noteRequest('_INBOX.1', 0);
    expect(two.canPublish('_INBOX.1', 1)).toBe(false);
    expect(one.canPublish('_INBOX.1', 1)).toBe(true);
  });

  it('permissionsFor (reload)', () => {
    const a = new Authenticator({ authorization: users });
    expect(a.permissionsFor('alice')!.canPublish('dflt.x')).toBe(true);
    expect(a.permissionsFor('bob')!.canPublish('dflt.x')).toBe(false);
    expect(a.permissionsFor('gone')).toBeNull();
    const noDefaults = new Authenticator({ authorization: authz({ users: [{ user: 'alice', password: 'pa' }] }) });
    expect(noDefaults.permissionsFor('alice')).toBeUndefined();
    expect(new Authenticator({ authorization: authz({ token: 't' }) }).permissionsFor('alice')).toBeNull();
  });
});

describe('no_auth_user', () => {
  const base = (noAuthPassword: string, types?: string[]): AuthorizationOptions =>
    authz({
      users: [
        { user: 'alice', password: 'pa' },
        {
          user: 'nobody',
          password: noAuthPassword,
          permissions: OWN_PERMS,
          ...(types ? { allowedConnectionTypes: types } : {}),
        },
      ],
    });

  it('a client that sends no credentials becomes that user; INFO says auth is not required', async () => {
    for (const pw of ['pn', PB_2A]) {
      const a = new Authenticator({ authorization: base(pw), noAuthUser: 'nobody' });
      expect(a.configured).toBe(true);
      expect(a.required).toBe(false);
      const table: [Credentials, string][] = [
        [{}, 'nobody/pub-denied'],
        [{ user: '', pass: '', authToken: '' }, 'nobody/pub-denied'],
        [{ pass: 'pn' }, 'VIOLATION'], // anything sent is checked
        [{ authToken: 'x' }, 'VIOLATION'],
        [{ user: 'nobody' }, 'VIOLATION'],
        [{ user: 'alice', pass: 'pa' }, 'alice/free'],
        [{ user: 'alice', pass: 'bad' }, 'VIOLATION'],
      ];
      for (const [creds, want] of table) expect([pw, creds, await run(a, creds)]).toEqual([pw, creds, want]);
      expect(summary(a.authenticateWithoutConnect('STANDARD'))).toBe('nobody/pub-denied');
    }
  });

  it('connection types still apply', async () => {
    const a = new Authenticator({ authorization: base('pn', ['MQTT']), noAuthUser: 'nobody' });
    expect(await run(a, {}, 'STANDARD')).toBe('VIOLATION');
    expect(await run(a, {}, 'MQTT')).toBe('nobody/pub-denied');
    expect(a.authenticateWithoutConnect('STANDARD')).toBeNull();
  });

  it('must name a user of the list', () => {
    expect(() => new Authenticator({ authorization: base('pn'), noAuthUser: 'ghost' })).toThrow(/ghost/);
    expect(() => new Authenticator({ authorization: authz({ token: 't' }), noAuthUser: 'x' })).toThrow();
    expect(() => new Authenticator({ noAuthUser: 'x' })).toThrow();
    expect(new Authenticator({ authorization: base('pn'), noAuthUser: '' }).required).toBe(true);
  });
});

describe('bcrypt', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('successful checks are cached per Authenticator, failures never', async () => {
    const spy = vi.spyOn(bcrypt, 'compare');
    const opts = { authorization: authz({ users: [{ user: 'bob', password: PB_2B }, { user: 'eve', password: PB_2B }] }) };
    const a = new Authenticator(opts);
    expect(await run(a, { user: 'bob', pass: 'pb' })).toBe('bob/free');
    expect(spy).toHaveBeenCalledTimes(1);
    expect(await run(a, { user: 'bob', pass: 'pb' })).toBe('bob/free');
    expect(spy).toHaveBeenCalledTimes(1);
    expect(await run(a, { user: 'bob', pass: 'nope' })).toBe('VIOLATION');
    expect(await run(a, { user: 'bob', pass: 'nope' })).toBe('VIOLATION');
    expect(spy).toHaveBeenCalledTimes(3);
    // keyed by user too: same secret, other user, its own check
    expect(await run(a, { user: 'eve', pass: 'pb' })).toBe('eve/free');
    expect(spy).toHaveBeenCalledTimes(4);
    // a rebuilt Authenticator (reload) starts empty
    const b = new Authenticator(opts);
    expect(await run(b, { user: 'bob', pass: 'pb' })).toBe('bob/free');
    expect(spy).toHaveBeenCalledTimes(5);
  });

  it('a burst of identical reconnects runs one compare', async () => {
    const spy = vi.spyOn(bcrypt, 'compare');
    const a = new Authenticator({ authorization: authz({ users: [{ user: 'bob', password: PB_2B }] }) });
    const results = await Promise.all(Array.from({ length: 8 }, () => run(a, { user: 'bob', pass: 'pb' })));
    expect(results).toEqual(Array(8).fill('bob/free'));
    expect(spy).toHaveBeenCalledTimes(1);
    const bad = await Promise.all(Array.from({ length: 4 }, () => run(a, { user: 'bob', pass: 'x' })));
    expect(bad).toEqual(Array(4).fill('VIOLATION'));
    expect(spy).toHaveBeenCalledTimes(2);
  });

  it('a $2a$11$ check does not block the event loop', async () => {
    const hash = `$2a$11$${(await bcrypt.hash('slow', 11)).slice(7)}`;
    /** Ticks of a 5 ms interval while `work` runs, and the longest silence between them. */
    const measure = async (work: () => Promise<unknown> | unknown): Promise<{ ticks: number; ms: number }> => {
      let ticks = 0;
      const timer = setInterval(() => {
        ticks++;
      }, 5);
      const t0 = performance.now();
      await work();
      const ms = performance.now() - t0;
      clearInterval(timer);
      return { ticks, ms };
    };
    const a = new Authenticator({ authorization: authz({ users: [{ user: 'u', password: hash }] }) });
    let result = '';
    const async11 = await measure(async () => {
      result = await run(a, { user: 'u', pass: 'slow' });
    });
    expect(result).toBe('u/free');
    // bcryptjs works in slices of at most ~100 ms, so timers run in between.
    expect(async11.ms).toBeGreaterThan(100);
    expect(async11.ticks).toBeGreaterThanOrEqual(1);
    // The same work done synchronously lets no timer run at all: the measurement can fail.
    const sync11 = await measure(() => bcrypt.compareSync('slow', hash));
    expect(sync11.ticks).toBe(0);
  });
});

// ---- against the real nats-server ---------------------------------------------------------------

describe('live: nats-server 2.9.10 admits and refuses the same clients', () => {
  afterAll(async () => {
    await stopAllServers();
  });

  function connectLine(c: Credentials): string {
    const o: Record<string, unknown> = { verbose: true, pedantic: false };
    if (c.user !== undefined) o['user'] = c.user;
    if (c.pass !== undefined) o['pass'] = c.pass;
    if (c.authToken !== undefined) o['auth_token'] = c.authToken;
    return `CONNECT ${JSON.stringify(o)}\r\n`;
  }

  /** '+OK' or the -ERR line, as the real server answers a CONNECT. */
  async function serverAnswer(port: number, creds: Credentials): Promise<{ answer: string; authRequired: boolean }> {
    const c = await RawClient.connect(port);
    c.send(connectLine(creds));
    const text = await c.waitFor(/^(\+OK|-ERR [^\r]*)\r\n/);
    c.close();
    return { answer: text.split('\r\n')[0]!, authRequired: c.info?.auth_required === true };
  }

  function expected(r: AuthResult | null): string {
    return r === null ? "-ERR 'Authorization Violation'" : '+OK';
  }

  it('users, bcrypt, connection types, no_auth_user', async () => {
    const auth = authz({
      users: [
        { user: 'alice', password: 'pa' },
        { user: 'bob', password: PB_2A, permissions: OWN_PERMS },
        { user: 'bob2', password: PB_2B },
        { user: 'mq', password: 'pm', allowedConnectionTypes: ['MQTT'] },
        { user: 'nobody', password: 'pn', permissions: OWN_PERMS },
      ],
      defaultPermissions: DEFAULT_PERMS,
    });
    const conf = `authorization {
      users: [
        { user: alice, password: pa }
        { user: bob, password: "${PB_2A}", permissions: { publish: "own.>" } }
        { user: bob2, password: "${PB_2B}" }
        { user: mq, password: pm, allowed_connection_types: ["MQTT"] }
        { user: nobody, password: pn, permissions: { publish: "own.>" } }
      ]
      permissions: { publish: "dflt.>" }
    }
    no_auth_user: nobody
    `;
    const srv = await startServer('nats-server', { config: conf });
    const a = new Authenticator({ authorization: auth, noAuthUser: 'nobody' });
    const cases: Credentials[] = [
      {},
      { pass: 'pn' },
      { authToken: 'pn' },
      { user: 'nobody' },
      { user: 'nobody', pass: 'pn' },
      { user: 'alice', pass: 'pa' },
      { user: 'alice', pass: 'x' },
      { user: 'alice' },
      { user: 'bob', pass: 'pb' },
      { user: 'bob', pass: 'pB' },
      { user: 'bob', pass: PB_2A },
      { user: 'bob2', pass: 'pb' },
      { user: 'mq', pass: 'pm' },
      { user: 'zz', pass: 'pa' },
    ];
    for (const creds of cases) {
      const live = await serverAnswer(srv.port, creds);
      expect([creds, live.answer]).toEqual([creds, expected(await a.authenticate(creds, 'STANDARD'))]);
      expect(live.authRequired).toBe(a.required);
    }
    expect(a.required).toBe(false);

    // Permissions that come with the user: the no_auth_user's own, alice's default.
    for (const [creds, subject] of [
      [{}, 'dflt.x'],
      [{}, 'own.x'],
      [{ user: 'alice', pass: 'pa' }, 'dflt.x'],
      [{ user: 'alice', pass: 'pa' }, 'own.x'],
    ] as [Credentials, string][]) {
      const c = await RawClient.connect(srv.port);
      c.send(connectLine(creds) + `PUB ${subject} 0\r\n\r\n`);
      const text = await c.ping();
      c.close();
      const r = await a.authenticate(creds, 'STANDARD');
      const allowed = r!.permissions!.canPublish(subject);
      expect([creds, subject, text.includes('Permissions Violation')]).toEqual([creds, subject, !allowed]);
    }

    // An op before CONNECT makes the client the no_auth_user (with CONNECT's defaults: verbose).
    const early = await RawClient.connect(srv.port);
    early.send('PUB own.x 0\r\n\r\nPUB dflt.x 0\r\n\r\n');
    const text = await early.ping();
    early.close();
    expect(text).toBe(`+OK\r\n-ERR 'Permissions Violation for Publish to "dflt.x"'\r\nPONG\r\n`);
    const implicit = a.authenticateWithoutConnect('STANDARD')!;
    expect([implicit.permissions!.canPublish('own.x'), implicit.permissions!.canPublish('dflt.x')]).toEqual([true, false]);
    await srv.stop();
  });

  it('token ($2x$ hash), op before CONNECT without no_auth_user', async () => {
    const srv = await startServer('nats-server', { config: `authorization { token: "${PB_2X}" }\n` });
    const a = new Authenticator({ authorization: authz({ token: PB_2X }) });
    for (const creds of [{ authToken: 'pb' }, { authToken: 'pB' }, { authToken: PB_2X }, { user: 'pb', pass: 'pb' }, {}]) {
      const live = await serverAnswer(srv.port, creds);
      expect([creds, live.answer]).toEqual([creds, expected(await a.authenticate(creds, 'STANDARD'))]);
      expect(live.authRequired).toBe(true);
    }
    expect(a.required).toBe(true);
    const early = await RawClient.connect(srv.port);
    early.send('PING\r\n');
    await early.closed();
    expect(early.text()).toBe("-ERR 'Authorization Violation'\r\n");
    expect(a.authenticateWithoutConnect('STANDARD')).toBeNull();
    await srv.stop();
  });

  it('single user: the block permissions do not apply to it', async () => {
    const srv = await startServer('nats-server', {
      config: 'authorization { user: u, password: pw, permissions: { publish: "x" } }\n',
    });
    const a = new Authenticator({ authorization: authz({ user: 'u', password: 'pw', defaultPermissions: { publish: { allow: ['x'], deny: [] } } }) });
    const c = await RawClient.connect(srv.port);
    c.send(connectLine({ user: 'u', pass: 'pw' }) + 'PUB y 0\r\n\r\n');
    const text = await c.ping();
    c.close();
    expect(text).toBe('+OK\r\n+OK\r\nPONG\r\n');
    expect((await a.authenticate({ user: 'u', pass: 'pw' }, 'STANDARD'))!.permissions).toBeUndefined();
    await srv.stop();
  });

  it('nats-server 2.9.10 refuses a no_auth_user whose password is a bcrypt hash (we admit it)', async () => {
    const srv = await startServer('nats-server', {
      config: `authorization { users: [ { user: n, password: "${PB_2A}" } ] }\nno_auth_user: n\n`,
    });
    const live = await serverAnswer(srv.port, {});
    expect(live.answer).toBe("-ERR 'Authorization Violation'");
    const a = new Authenticator({ authorization: authz({ users: [{ user: 'n', password: PB_2A }] }), noAuthUser: 'n' });
    expect(await run(a, {})).toBe('n/free');
    await srv.stop();
  });
});
