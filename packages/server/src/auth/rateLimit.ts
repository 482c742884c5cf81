import { LRUCache } from 'lru-cache';

/**
 * Counts failures per key within a fixed window and says when a key is over its limit. Per node
 * and in memory: a cluster of N nodes allows up to N times the limit (noted in the README).
 */
export class FailureLimiter {
  private readonly windows: LRUCache<string, { count: number; resetAt: number }>;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {
    // Bounded so that a flood of distinct keys cannot exhaust memory.
    this.windows = new LRUCache({ max: 100_000 });
  }

  /**
   * Seconds until `key` may try again, or 0 when it is under the limit. Client addresses
   * (`ip:` keys) get ten times the limit: many people may share one address behind a NAT.
   */
  blockedFor(key: string, now = Date.now()): number {
    // The common case, checked on every request: nobody has failed lately.
    if (this.windows.size === 0) return 0;
    const w = this.windows.get(key);
    const limit = key.startsWith('ip:') ? this.limit * 10 : this.limit;
    if (!w || w.resetAt <= now || w.count < limit) return 0;
    return Math.ceil((w.resetAt - now) / 1000);
  }

  /** Records one failure for each key. */
  fail(keys: string[], now = Date.now()): void {
    for (const key of keys) {
      const w = this.windows.get(key);
      if (!w || w.resetAt <= now) this.windows.set(key, { count: 1, resetAt: now + this.windowMs });
      else w.count += 1;
    }
  }

  /** Forgets `key` (after a successful login). */
  clear(key: string): void {
    this.windows.delete(key);
  }
}
