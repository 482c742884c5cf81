import { LRUCache } from 'lru-cache';
import type { CacheMetrics } from './cacheMetrics.js';
import { InvalidationLedger } from './ledger.js';
import type { RedisTier } from './redisTier.js';

/** A value read from the database, and the log position (head seq) of the snapshot it was read in. */
export interface Loaded<T> {
  value: T;
  seq: number;
}

interface L1Entry {
  value: unknown;
  seq: number;
  size: number;
}

/** What the status page and the cluster status endpoint show of a node's cache. */
export interface CacheStats {
  l1Entries: number;
  l1Bytes: number;
  l1MaxBytes: number;
  l2: 'absent' | 'up' | 'down';
  ledgerFloor: number;
  suspended: boolean;
}

/**
 * Read-through cache in two tiers: L1 in this process (bounded by bytes), L2 in Redis when the
 * node is in cluster mode. Values are immutable snapshots: callers must not modify what they get.
 *
 * Guarantees:
 * - **No stale fill.** A value read at log position S is stored in L1 only if this node has
 *   applied no invalidation of its key after S, and in L2 only if no node has (compare-and-set in
 *   Redis). An L2 value is served only if it is not older than an invalidation this node applied.
 * - **Monotonic per node.** An invalidation at seq X removes only entries read before X, so an
 *   entry read ahead of this node's cursor is not replaced by an older one.
 * - **Single flight.** Concurrent misses of one key in this process make one database read; an
 *   invalidation detaches the flight, so a request that arrives after it never gets the old read.
 * - Invalidation comes only from the change log ({@link invalidate} is called by the log's
 *   consumers with each change's cache keys), never from routes or commands.
 */
export class TieredCache {
  readonly ledger = new InvalidationLedger();
  private readonly l1: LRUCache<string, L1Entry>;
  private readonly flights = new Map<string, Promise<unknown>>();
  private readonly l2Writes = new Set<Promise<unknown>>();
  private suspendedFor: string | null = null;

  constructor(private readonly opts: { maxBytes: number; l2?: RedisTier; metrics: CacheMetrics }) {
    this.l1 = new LRUCache<string, L1Entry>({
      maxSize: opts.maxBytes,
      sizeCalculation: (e) => Math.max(1, e.size),
    });
  }

  /**
   * The value of `key`: from L1, else L2, else `load()` (once per key at a time in this process),
   * which must read the value and the log head in one database snapshot.
   */
  async get<T>(key: string, load: () => Promise<Loaded<T>>): Promise<T> {
    const { metrics } = this.opts;
    if (this.suspendedFor !== null) {
      metrics.loads.inc();
      return (await load()).value;
    }
    const hit = this.l1.get(key);
    if (hit) {
      metrics.lookup.l1Hit.inc();
      return hit.value as T;
    }
    metrics.lookup.l1Miss.inc();
    const inFlight = this.flights.get(key);
    if (inFlight) return inFlight as Promise<T>;
    const flight = this.fetch(key, load);
    this.flights.set(key, flight);
    const done = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    flight.then(done, done);
    return flight;
  }

  /**
   * The value of `key` if L1 holds it (counted as a hit), else undefined: for paths that can finish
   * synchronously when the value is cached. Never reads L2 or the database.
   */
  peek<T>(key: string): T | undefined {
    if (this.suspendedFor !== null) return undefined;
    const hit = this.l1.get(key);
    if (!hit) return undefined;
    this.opts.metrics.lookup.l1Hit.inc();
    return hit.value as T;
  }

  /**
   * The value of `key` and the log position it was read at, if L1 holds it: for a reader that
   * combines several values and needs them all as of one position (see CachedReads.registerRows).
   */
  peekEntry<T>(key: string): Loaded<T> | undefined {
    if (this.suspendedFor !== null) return undefined;
    const hit = this.l1.get(key);
    if (!hit) return undefined;
    this.opts.metrics.lookup.l1Hit.inc();
    return { value: hit.value as T, seq: hit.seq };
  }

  /** Applies the invalidations of the change at `seq` (called by the log consumer, in seq order). */
  invalidate(keys: readonly string[], seq: number): void {
    for (const key of keys) {
      this.ledger.record(key, seq);
      const entry = this.l1.peek(key);
      if (entry && entry.seq < seq) this.l1.delete(key);
      this.flights.delete(key);
    }
    this.opts.metrics.invalidations.inc(keys.length);
    if (this.opts.l2 && keys.length > 0) this.trackL2(this.opts.l2.invalidate([...keys], seq));
  }

  /**
   * Drops all of L1 and admits only values read at or after `seq` (the log was pruned past this
   * node's cursor, so it cannot know which keys changed in between).
   */
  flush(seq: number, reason: string): void {
    this.l1.clear();
    this.flights.clear();
    this.ledger.reset(seq);
    this.opts.metrics.flushes.labels(reason).inc();
  }

  /**
   * Stops serving from and filling the cache (every get reads the database) until {@link resume}:
   * while this node may have missed invalidations, e.g. its doorbell connection is down.
   */
  suspend(reason: string): void {
    this.suspendedFor = reason;
  }

  /** Serves from the cache again; the caller has caught up with the log first. */
  resume(): void {
    this.suspendedFor = null;
  }

  get suspended(): boolean {
    return this.suspendedFor !== null;
  }

  /** Waits for L2 writes started so far (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.l2Writes]);
  }

  stats(): CacheStats {
    return {
      l1Entries: this.l1.size,
      l1Bytes: this.l1.calculatedSize,
      l1MaxBytes: this.opts.maxBytes,
      l2: this.opts.l2 ? (this.opts.l2.available ? 'up' : 'down') : 'absent',
      ledgerFloor: this.ledger.floor,
      suspended: this.suspended,
    };
  }

  /** Puts a value read at `seq` into L1 if no invalidation after `seq` is known (warm-up uses it too). */
  fillL1(key: string, value: unknown, seq: number, size: number): boolean {
    if (!this.ledger.admits(key, seq)) {
      this.opts.metrics.staleFillsRefused.labels('l1').inc();
      return false;
    }
    const current = this.l1.peek(key);
    if (current && current.seq >= seq) return true;
    this.l1.set(key, { value, seq, size });
    return true;
  }

  /** Updates the L1 gauges (called on scrape). */
  observe(): void {
    this.opts.metrics.l1Bytes.set(this.l1.calculatedSize);
    this.opts.metrics.l1Entries.set(this.l1.size);
  }

  private async fetch<T>(key: string, load: () => Promise<Loaded<T>>): Promise<T> {
    const { metrics, l2 } = this.opts;
    if (l2) {
      const entry = await l2.get(key);
      if (entry && this.ledger.admits(key, entry.seq)) {
        metrics.lookup.l2Hit.inc();
        const value = JSON.parse(entry.json) as T;
        this.fillL1(key, value, entry.seq, entry.json.length);
        return value;
      }
      if (entry) metrics.staleL2Refused.inc();
      metrics.lookup.l2Miss.inc();
    }
    metrics.loads.inc();
    const { value, seq } = await load();
    const json = JSON.stringify(value);
    // The check and the store are synchronous: no invalidation can be applied in between.
    if (!this.fillL1(key, value, seq, json.length)) return value;
    if (l2) {
      this.trackL2(
        l2.fill(key, seq, json).then((r) => {
          if (r === 'stale') metrics.staleFillsRefused.labels('l2').inc();
        }),
      );
    }
    return value;
  }

  private trackL2(p: Promise<unknown>): void {
    this.l2Writes.add(p);
    void p.finally(() => this.l2Writes.delete(p));
  }
}
