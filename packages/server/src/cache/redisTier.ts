import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { CacheMetrics } from './cacheMetrics.js';

/** An L2 entry: the JSON of a value and the log position it was read at. */
export interface L2Entry {
  seq: number;
  json: string;
}

/** How an L2 fill ended. */
export type L2FillResult = 'stored' | 'stale' | 'newer-present' | 'unavailable';

// Each key is a hash: `s` the seq its value was read at, `v` the value, `i` the newest seq that
// invalidated it (a tombstone that outlives the value). Both scripts run atomically in Redis, so a
// slow reader's fill and a writer's invalidation cannot interleave: whichever runs second sees the
// other's seq. That is the compare-and-set that keeps an old value out of L2.
const FILL = `
local inv = tonumber(redis.call('HGET', KEYS[1], 'i') or '0')
local cur = tonumber(redis.call('HGET', KEYS[1], 's') or '-1')
local seq = tonumber(ARGV[1])
if seq < inv then return 0 end
if cur >= seq then return 2 end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'v', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1`;

const INVALIDATE = `
local seq = tonumber(ARGV[1])
for _, k in ipairs(KEYS) do
  local inv = tonumber(redis.call('HGET', k, 'i') or '0')
  if seq > inv then redis.call('HSET', k, 'i', ARGV[1]) end
  local cur = tonumber(redis.call('HGET', k, 's') or '-1')
  if cur >= 0 and cur < seq then redis.call('HDEL', k, 's', 'v') end
  redis.call('EXPIRE', k, ARGV[2])
end
return #KEYS`;

/**
 * The shared tier: Redis, one hash per key under a prefix unique to the database and schema. It
 * never blocks a request on Redis being away: commands fail at once while disconnected (no offline
 * queue) and time out quickly, and the caller answers from L1 and the database. Invalidations that
 * could not be written are kept (bounded) and written when the connection returns; values they
 * would have removed are in any case refused by every node's own ledger.
 */
export class RedisTier {
  private readonly redis: Redis;
  private readonly prefix: string;
  private pending: { keys: string[]; seq: number }[] = [];
  private pendingKeys = 0;

  constructor(
    url: string,
    scope: string,
    private readonly metrics: CacheMetrics,
    private readonly logger: Logger,
    private readonly opts: { ttlSeconds: number; commandTimeoutMs: number } = {
      ttlSeconds: 3600,
      commandTimeoutMs: 250,
    },
  ) {
    this.prefix = `concord:${createHash('sha256').update(scope).digest('hex').slice(0, 16)}:c:`;
    this.redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    });
    this.redis.defineCommand('concordFill', { numberOfKeys: 1, lua: FILL });
    this.redis.defineCommand('concordInvalidate', { lua: INVALIDATE });
    this.redis.on('ready', () => {
      metrics.l2Available.set(1);
      logger.info('L2 cache (Redis) connected');
      void this.flushPending();
    });
    this.redis.on('close', () => metrics.l2Available.set(0));
    this.redis.on('error', (err: Error) => logger.debug({ err: err.message }, 'L2 cache (Redis) error'));
    metrics.l2Available.set(0);
  }

  /** Connects; a node starts without Redis too, and the tier joins when Redis answers. */
  async start(): Promise<void> {
    await this.redis.connect().catch((err: Error) => {
      this.logger.warn(
        { err: err.message },
        'L2 cache (Redis) unavailable at start; serving from L1 and the database',
      );
    });
  }

  get available(): boolean {
    return this.redis.status === 'ready';
  }

  /** The entry for `key`, or null when absent or Redis is away. */
  async get(key: string): Promise<L2Entry | null> {
    if (!this.available) return null;
    try {
      const [s, v] = await this.redis.hmget(this.prefix + key, 's', 'v');
      if (s == null || v == null) return null;
      return { seq: Number(s), json: v };
    } catch {
      this.metrics.l2Errors.inc();
      return null;
    }
  }

  /** Stores `json` read at `seq` unless an invalidation after `seq`, or a newer value, is there. */
  async fill(key: string, seq: number, json: string): Promise<L2FillResult> {
    if (!this.available) return 'unavailable';
    try {
      const r = (await (this.redis as unknown as RedisScripts).concordFill(
        this.prefix + key,
        seq,
        json,
        this.opts.ttlSeconds,
      )) as number;
      return r === 1 ? 'stored' : r === 0 ? 'stale' : 'newer-present';
    } catch {
      this.metrics.l2Errors.inc();
      return 'unavailable';
    }
  }

  /** Records the invalidation of `keys` by the change at `seq`; queued while Redis is away. */
  async invalidate(keys: string[], seq: number): Promise<void> {
    if (keys.length === 0) return;
    if (!this.available || this.pending.length > 0) {
      this.queue(keys, seq);
      return;
    }
    try {
      await this.runInvalidate(keys, seq);
    } catch {
      this.metrics.l2Errors.inc();
      this.queue(keys, seq);
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  private runInvalidate(keys: string[], seq: number): Promise<unknown> {
    const full = keys.map((k) => this.prefix + k);
    return (this.redis as unknown as RedisScripts).concordInvalidate(
      full.length,
      ...full,
      seq,
      this.opts.ttlSeconds,
    );
  }

  private queue(keys: string[], seq: number): void {
    // Bounded: past it the oldest are dropped. Every node's ledger refuses what they would have
    // removed, and values expire after ttlSeconds.
    this.pending.push({ keys, seq });
    this.pendingKeys += keys.length;
    while (this.pendingKeys > 100_000) this.pendingKeys -= this.pending.shift()!.keys.length;
  }

  private async flushPending(): Promise<void> {
    while (this.pending.length > 0 && this.available) {
      const next = this.pending[0]!;
      try {
        await this.runInvalidate(next.keys, next.seq);
        this.pending.shift();
        this.pendingKeys -= next.keys.length;
      } catch {
        this.metrics.l2Errors.inc();
        return;
      }
    }
  }
}

interface RedisScripts {
  concordFill(key: string, seq: number, json: string, ttl: number): Promise<unknown>;
  concordInvalidate(n: number, ...args: (string | number)[]): Promise<unknown>;
}
