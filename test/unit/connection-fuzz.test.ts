import { describe, expect, it } from 'vitest';
import { checkServerFrames, runConnectionFuzz } from '../../scripts/fuzz/connection-fuzz.js';

describe('connection fuzz (short run of scripts/fuzz --target connection)', () => {
  it('5 000 inputs through a whole client connection: no exception, well-formed answers, bounded, answer or close', async () => {
    const result = await runConnectionFuzz({ seed: 11, iterations: 5_000 });
    expect(result.failures).toEqual([]);
    expect(result.iterations).toBe(5_000);
    // Both endings occur: inputs that leave a healthy connection, and inputs that get it closed.
    expect(result.outcomes['pong'] ?? 0).toBeGreaterThan(10);
    expect((result.outcomes['closed'] ?? 0) + (result.outcomes['closed-after-flush'] ?? 0)).toBeGreaterThan(1000);
  }, 120_000);

  it('the frame checker takes subjects and sids with odd bytes, as nats-server relays them', () => {
    expect(checkServerFrames('MSG \rPI.> S1 0\r\n\r\n')).toBeNull();
    expect(checkServerFrames('HMSG *.x-y 3 \u00eb\fM 12 12\r\nNATS/1.0\r\n\r\n\r\n')).toBeNull();
  });

  it('the frame checker refuses what a server never sends', () => {
    expect(checkServerFrames('+OK\r\nMSG a 1 2\r\nhi\r\nPONG\r\n')).toBeNull();
    expect(checkServerFrames('HMSG a 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n')).toBeNull();
    expect(checkServerFrames('MSG a 1 3\r\nhi\r\n')).not.toBeNull();
    expect(checkServerFrames('HMSG a 1 20 14\r\nNATS/1.0\r\n\r\nhi\r\n')).not.toBeNull();
    expect(checkServerFrames('PONG\r')).not.toBeNull();
    expect(checkServerFrames('BOGUS\r\n')).not.toBeNull();
  });
});
