import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Logger } from '../../src/log.js';

const dir = mkdtempSync(join(tmpdir(), 'nats-edge-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Logger', () => {
  it('writes one line per event: CR and LF inside a message are escaped', () => {
    const file = join(dir, 'a.log');
    const log = new Logger({ debug: true, trace: false, logtime: false, logtimeUtc: false, logFile: file });
    log.info('client "evil\n[1] [ERR] forged"');
    log.debug('a\r\nb');
    log.trace('not written: trace is off');
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines).toEqual([`[${process.pid}] [INF] client "evil\\n[1] [ERR] forged"`, `[${process.pid}] [DBG] a\\r\\nb`, '']);
  });
});
