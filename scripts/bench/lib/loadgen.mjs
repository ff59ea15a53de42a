// Parent side of the raw-socket load generator: forks the worker processes, starts them
// together, watches for stalls, and turns their reports into figures.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readCpuSeconds, readRunqueueWaitSeconds } from './rss.mjs';

const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url));

/**
 * One worker process; messages are queued per type so none is missed between awaits.
 * `workerPath` lets other generators (lib/mqtt-worker.mjs) reuse the same IPC plumbing.
 */
export class WorkerProc {
  constructor(cfg, workerPath = WORKER) {
    this.cfg = cfg;
    this.child = fork(workerPath, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.queue = [];
    this.waiters = [];
    this.failure = null;
    this.onProgress = null;
    this.child.on('message', (m) => {
      if (m.type === 'progress') {
        this.onProgress?.(m);
        return;
      }
      if (m.type === 'error') {
        this.abort(new Error(`${cfg.role}: ${m.message}`));
        return;
      }
      const i = this.waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m);
      else this.queue.push(m);
    });
    this.child.on('exit', (code, signal) => {
      this.abort(new Error(`${cfg.role} worker exited (${signal ?? code}) before reporting`));
    });
    this.child.send(cfg);
  }

  abort(err) {
    this.failure ??= err;
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
  }

  next(type) {
    const i = this.queue.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ type, resolve, reject }));
  }

  send(m) {
    if (this.child.connected) this.child.send(m);
  }

  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * Rejects when `progress()` has not changed for `stallMs`, or when `server` died.
 * Resolves never; stop() clears the timer.
 */
export function watchdog(progress, stallMs, server, what) {
  let timer;
  const promise = new Promise((_, reject) => {
    let last = progress();
    let lastChange = Date.now();
    timer = setInterval(() => {
      if (server !== undefined && !server.alive()) {
        reject(new Error(`${server.kind} died during ${what} (${JSON.stringify(server.exitInfo())}); log tail:\n${server.logs().trimEnd().split('\n').slice(-15).join('\n')}`));
        return;
      }
      const p = progress();
      if (p !== last) {
        last = p;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > stallMs) {
        reject(new Error(`${what} stalled for ${stallMs} ms at ${p}`));
      }
    }, 200);
  });
  return { promise, stop: () => clearInterval(timer) };
}

/**
 * 1 publisher -> `subs` subscribers on one subject, `total` messages of `payloadSize` bytes.
 * Subscribers are spread over `subProcs` processes. Rate = deliveries counted by the
 * subscribers / (last subscriber done - first publish), in one clock (hrtime is CLOCK_MONOTONIC,
 * the same in every process).
 * All connect to `server` unless opts.subPort puts the subscribers elsewhere (the far side of a
 * leaf link); opts.beforeStart(tag) runs once every worker is ready (e.g. to wait until the
 * interest has crossed the link); opts.watch replaces `server` for the stall watchdog;
 * opts.otherPids ({ name: pid }) adds those processes' CPU as `otherCpuCores`.
 */
export async function runPubSub(opts) {
  const { server, subs, total } = opts;
  const otherPids = Object.entries(opts.otherPids ?? {});
  const subProcs = Math.min(opts.subProcs ?? subs, subs);
  const ackEvery = opts.ackEvery ?? 1000;
  const window = Math.max(opts.window ?? 20_000, ackEvery * 4);
  const tag = Math.random().toString(36).slice(2, 8);
  const subject = `bench.${tag}.data`;
  const ackPrefix = `bench.${tag}.ack`;
  const workers = [];
  const counts = [];
  try {
    let base = 0;
    for (let p = 0; p < subProcs; p++) {
      const n = Math.floor(subs / subProcs) + (p < subs % subProcs ? 1 : 0);
      const w = new WorkerProc({ role: 'sub', port: opts.subPort ?? server.port, subject, conns: n, baseIndex: base, target: total, ackEvery, ackPrefix });
      const offset = base;
      w.onProgress = (m) => m.counts.forEach((c, i) => (counts[offset + i] = c));
      for (let i = 0; i < n; i++) counts[base + i] = 0;
      base += n;
      workers.push(w);
    }
    const subWorkers = workers.slice();
    await Promise.all(subWorkers.map((w) => w.next('ready')));
    const pub = new WorkerProc({
      role: 'pub', port: server.port, subject, ackPrefix, subs, total, window, ackEvery,
      payloadSize: opts.payloadSize, batch: opts.batch ?? 256,
    });
    workers.push(pub);
    await pub.next('ready');
    await opts.beforeStart?.(tag);

    const dog = watchdog(() => counts.reduce((a, b) => a + b, 0), opts.stallMs ?? 10_000, opts.watch ?? server, opts.what ?? `${subs}-subscriber run`);
    const cpu0 = readCpuSeconds(server.pid);
    const wait0 = readRunqueueWaitSeconds(server.pid);
    const others0 = otherPids.map(([, pid]) => readCpuSeconds(pid));
    pub.send({ cmd: 'start' });
    let sent;
    let dones;
    try {
      [sent, dones] = await Promise.race([
        Promise.all([pub.next('sent'), Promise.all(subWorkers.map((w) => w.next('done')))]),
        dog.promise,
      ]);
    } finally {
      dog.stop();
    }
    const cpu1 = readCpuSeconds(server.pid);
    const wait1 = readRunqueueWaitSeconds(server.pid);
    const others1 = otherPids.map(([, pid]) => readCpuSeconds(pid));
    for (const w of subWorkers) w.send({ cmd: 'finish' });
    const finals = await Promise.all(subWorkers.map((w) => w.next('final')));
    pub.send({ cmd: 'finish' });

    const finalCounts = finals.flatMap((f) => f.counts);
    const wrong = finalCounts.map((c, i) => ({ i, c })).filter((x) => x.c !== total);
    if (wrong.length > 0)
      throw new Error(`wrong delivery counts: expected ${total} per subscriber, got ${wrong.map((x) => `sub${x.i}=${x.c}`).join(', ')}`);
    const tDone = Math.max(...dones.flatMap((d) => d.tDone));
    const seconds = (tDone - sent.t0) / 1e9;
    const deliveries = total * subs;
    return {
      subs,
      published: total,
      deliveries,
      seconds,
      rate: deliveries / seconds,
      publishRate: total / seconds,
      serverCpuCores: (cpu1 - cpu0) / seconds,
      // Runnable-but-not-running time of the server's threads per second of the run.
      serverRunqueueWait: (wait1 - wait0) / seconds,
      // Generator processes' own CPU, to tell a saturated generator from a saturated server.
      publisherCpuCores: sent.cpu / ((sent.tSent - sent.t0) / 1e9),
      subscriberCpuCores: dones.map((d) => d.cpu / seconds),
      ...(otherPids.length > 0 && { otherCpuCores: Object.fromEntries(otherPids.map(([name], i) => [name, (others1[i] - others0[i]) / seconds])) }),
      errors: finals.flatMap((f) => f.errors),
    };
  } finally {
    for (const w of workers) w.kill();
  }
}

/**
 * One responder, one requester with `concurrency` requests outstanding; `warmup` requests
 * first, not counted. Latencies in microseconds. Both connect to `server` unless
 * opts.responderPort puts the responder elsewhere; opts.beforeStart, opts.watch and opts.what
 * as for runPubSub.
 */
export async function runRequestReply(opts) {
  const { server } = opts;
  const tag = Math.random().toString(36).slice(2, 8);
  const subject = `bench.${tag}.req`;
  const workers = [];
  try {
    const responder = new WorkerProc({ role: 'responder', port: opts.responderPort ?? server.port, subject, payloadSize: opts.payloadSize });
    workers.push(responder);
    await responder.next('ready');
    const requester = new WorkerProc({
      role: 'requester', port: server.port, subject, inbox: `_INBOX.${tag}`,
      count: opts.count, warmup: opts.warmup ?? 1000, concurrency: opts.concurrency ?? 1, payloadSize: opts.payloadSize,
    });
    workers.push(requester);
    let done = 0;
    requester.onProgress = (m) => (done = m.done);
    await requester.next('ready');
    await opts.beforeStart?.(tag);
    const dog = watchdog(() => done, opts.stallMs ?? 10_000, opts.watch ?? server, opts.what ?? `request/reply (concurrency ${opts.concurrency ?? 1})`);
    const cpu0 = readCpuSeconds(server.pid);
    requester.send({ cmd: 'start' });
    let result;
    try {
      result = await Promise.race([requester.next('result'), dog.promise]);
    } finally {
      dog.stop();
    }
    const cpu1 = readCpuSeconds(server.pid);
    responder.send({ cmd: 'finish' });
    requester.send({ cmd: 'finish' });
    await responder.next('final');
    return { ...result, concurrency: opts.concurrency ?? 1, serverCpuCores: (cpu1 - cpu0) / result.seconds };
  } finally {
    for (const w of workers) w.kill();
  }
}
