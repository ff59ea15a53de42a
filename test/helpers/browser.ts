/**
 * Browser test helpers: Debian's chromium driven by playwright-core (the system browser, never a
 * downloaded one), a log of every request a browser context makes, and waits on the
 * `data-testid` / `data-value` elements of the gateway console page.
 */
import { existsSync } from 'node:fs';
import { chromium, errors, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** The system chromium; CHROMIUM_BIN overrides it for a machine that has it elsewhere. */
export const CHROMIUM_BIN = process.env['CHROMIUM_BIN'] ?? '/usr/bin/chromium';

/**
 * Flags for a quiet, offline-friendly headless run: no sandbox (CI runs as root), no GPU, and
 * none of the browser's own background traffic (updates, sync, QUIC probes), so every request
 * the log sees comes from the page.
 */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launches headless chromium with a fresh temporary profile (playwright makes and removes it).
 * Fails loudly when the browser is missing: the test needs it and .ci/run installs it.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_BIN)) {
    throw new Error(
      `chromium not found at ${CHROMIUM_BIN}: the browser tests drive Debian's chromium ` +
        '(.ci/run installs it with `apt-get install chromium`; set CHROMIUM_BIN if it lives elsewhere)',
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS, timeout: 30_000 });
}

export interface LoggedRequest {
  url: string;
  method: string;
  resourceType: string;
}

/** Records every request the context's pages make (documents, scripts, event streams, icons...). */
export function recordRequests(context: BrowserContext): LoggedRequest[] {
  const log: LoggedRequest[] = [];
  context.on('request', (r) => log.push({ url: r.url(), method: r.method(), resourceType: r.resourceType() }));
  return log;
}

/** What an element of the page shows: its data-value and its text (null when absent). */
export interface Shown {
  present: boolean;
  value: string | null;
  text: string | null;
}

export async function shown(page: Page, selector: string): Promise<Shown> {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    if (el === null) return { present: false, value: null, text: null };
    return { present: true, value: el.getAttribute('data-value'), text: (el.textContent ?? '').trim() };
  }, selector);
}

/** A condition on an element's data-value: numeric for gt/ge/lt, exact string for eq/ne. */
export type ValueCheck = { op: 'gt' | 'ge' | 'lt'; value: number } | { op: 'eq' | 'ne'; value: string | number };

function describeCheck(c: ValueCheck): string {
  const sym = { gt: '>', ge: '>=', lt: '<', eq: '==', ne: '!=' }[c.op];
  return `${sym} ${JSON.stringify(c.value)}`;
}

/**
 * Waits (inside the page, checked every 100 ms by playwright) until the element's data-value
 * meets `check`; resolves with that data-value. On timeout the error says what the page showed.
 */
export async function waitForValue(page: Page, selector: string, check: ValueCheck, timeoutMs: number, what = selector): Promise<string> {
  try {
    const handle = await page.waitForFunction(
      ({ sel, op, value }) => {
        const el = document.querySelector(sel);
        const raw = el?.getAttribute('data-value');
        if (raw === null || raw === undefined) return false;
        const n = raw.trim() === '' ? NaN : Number(raw);
        let ok: boolean;
        switch (op) {
          case 'gt':
            ok = n > Number(value);
            break;
          case 'ge':
            ok = n >= Number(value);
            break;
          case 'lt':
            ok = n < Number(value);
            break;
          case 'eq':
            ok = raw === String(value);
            break;
          default:
            ok = raw !== String(value);
        }
        return ok ? { raw } : false;
      },
      { sel: selector, op: check.op, value: check.value },
      { timeout: timeoutMs, polling: 100 },
    );
    const got = (await handle.jsonValue()) as { raw: string };
    await handle.dispose();
    return got.raw;
  } catch (err) {
    if (!(err instanceof errors.TimeoutError)) throw err;
    const now = await shown(page, selector).catch(() => undefined);
    throw new Error(
      `${what}: [${selector}] data-value ${describeCheck(check)} not reached within ${timeoutMs} ms; ` +
        `the page shows ${now === undefined ? '(page gone)' : JSON.stringify(now)}`,
    );
  }
}

/** Waits until `fn` (run in the page) returns a truthy value; resolves with it, or throws `what` with the last value. */
export async function waitInPage<A, R>(page: Page, fn: (arg: A) => R | false, arg: A, timeoutMs: number, what: string, describe: () => Promise<string>): Promise<R> {
  try {
    // The argument is plain JSON data, which playwright passes through unchanged.
    const handle = await page.waitForFunction(fn as (a: unknown) => R | false, arg as unknown, { timeout: timeoutMs, polling: 100 });
    const got = (await handle.jsonValue()) as R;
    await handle.dispose();
    return got;
  } catch (err) {
    if (!(err instanceof errors.TimeoutError)) throw err;
    throw new Error(`${what}: not reached within ${timeoutMs} ms; ${await describe().catch((e: unknown) => `(page unreadable: ${String(e)})`)}`);
  }
}
