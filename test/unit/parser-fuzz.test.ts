import { describe, expect, it } from 'vitest';
import { Prng, fuzzInputs, referenceParse, runParserFuzz } from '../../scripts/fuzz/parser-fuzz.js';

describe('parser fuzz (short run of scripts/fuzz)', () => {
  it('20 000 inputs: chunked = whole = reference model, one error at most, bounded buffering', () => {
    const result = runParserFuzz({ seed: 7, iterations: 20_000 });
    expect(result.failures).toEqual([]);
    expect(result.iterations).toBe(20_000);
    // the generator reaches every outcome, not just errors
    for (const kind of ['none', 'unknown-op', 'bad-args', 'control-line', 'max-payload', 'client-err', 'auth-violation']) {
      expect(result.outcomes[kind] ?? 0, kind).toBeGreaterThan(100);
    }
  }, 120_000);

  it('the input generator is deterministic for a seed and reusable on its own', () => {
    const a = [...fuzzInputs(3, 200)].map((chunks) => Buffer.concat(chunks).toString('hex'));
    const b = [...fuzzInputs(3, 200)].map((chunks) => Buffer.concat(chunks).toString('hex'));
    const c = [...fuzzInputs(4, 200)].map((chunks) => Buffer.concat(chunks).toString('hex'));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a.filter((hex) => hex.length > 0).length).toBeGreaterThan(150);
  });

  it('the PRNG is seeded, not Math.random', () => {
    const x = new Prng(1);
    const y = new Prng(1);
    const xs = Array.from({ length: 5 }, () => x.next());
    expect(xs).toEqual(Array.from({ length: 5 }, () => y.next()));
    expect(new Set(xs).size).toBe(5);
  });

  it('the reference model agrees with hand-checked cases', () => {
    const limits = { maxControlLine: 16, maxPayload: 8, headers: true, awaitingAuth: false };
    expect(referenceParse(Buffer.from('PING\r\nPUB a 2\r\nhi\r\nSUB a q 1\r\n'), limits)).toEqual([
      'ping', 'pub', 'a', '', -1, 'hi', 'sub', 'a', 'q', '1',
    ]);
    expect(referenceParse(Buffer.from('PUB a 9\r\n'), limits)).toEqual(['error', 'max-payload']);
    expect(referenceParse(Buffer.from('SUB ' + 'x'.repeat(17)), limits)).toEqual(['error', 'control-line']);
    expect(referenceParse(Buffer.from('MSG'), limits)).toEqual(['error', 'unknown-op']);
  });
});
