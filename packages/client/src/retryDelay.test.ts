import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiError, retryDelay } from './client.js';

describe('retryDelay', () => {
  it("waits at least the server's Retry-After, plus jittered exponential backoff bounded by maxMs", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 120 }), fc.nat(20), (retryAfter, attempt) => {
        const err = new ApiError(503, 'SERVICE_UNAVAILABLE', 'warming up', retryAfter);
        const wait = retryDelay(err, attempt, 250, 30_000);
        expect(wait).toBeGreaterThanOrEqual(retryAfter * 1000);
        expect(wait).toBeLessThanOrEqual(retryAfter * 1000 + Math.min(30_000, 250 * 2 ** attempt));
      }),
    );
  });

  it('spreads clients out: the same error and attempt give different waits', () => {
    const err = new ApiError(503, 'SERVICE_UNAVAILABLE', 'warming up', 2);
    const waits = new Set(Array.from({ length: 50 }, () => retryDelay(err, 3, 250, 30_000)));
    expect(waits.size).toBeGreaterThan(40);
  });

  it('without Retry-After, backs off exponentially from zero', () => {
    const waits = Array.from({ length: 200 }, () => retryDelay(new Error('network'), 0, 250, 30_000));
    expect(Math.max(...waits)).toBeLessThanOrEqual(250);
  });
});
