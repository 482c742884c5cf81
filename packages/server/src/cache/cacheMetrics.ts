import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { HotCounter } from '../observability/hotCounter.js';

/** The cache's Prometheus metrics, registered on the node's registry. */
export function createCacheMetrics(registry: Registry) {
  const registers = [registry];
  const lookups = new HotCounter({
    name: 'concord_cache_lookups_total',
    help: 'Cache lookups by tier (l1, l2) and result (hit, miss).',
    labelNames: ['tier', 'result'],
    registers,
  });
  return {
    /** Lookups by tier and result, counted on every cached read (hence plain numbers). */
    lookup: {
      l1Hit: lookups.child({ tier: 'l1', result: 'hit' }),
      l1Miss: lookups.child({ tier: 'l1', result: 'miss' }),
      l2Hit: lookups.child({ tier: 'l2', result: 'hit' }),
      l2Miss: lookups.child({ tier: 'l2', result: 'miss' }),
    },
    loads: new Counter({
      name: 'concord_cache_loads_total',
      help: 'Database reads made on a miss (one per single-flight group).',
      registers,
    }),
    staleFillsRefused: new Counter({
      name: 'concord_cache_stale_fills_refused_total',
      help: 'Values read before a change that invalidated them, refused by a tier (l1, l2) instead of stored.',
      labelNames: ['tier'],
      registers,
    }),
    staleL2Refused: new Counter({
      name: 'concord_cache_l2_stale_reads_refused_total',
      help: 'L2 values older than an invalidation this node has applied, not served.',
      registers,
    }),
    invalidations: new Counter({
      name: 'concord_cache_invalidations_total',
      help: 'Cache keys invalidated by changes from the log.',
      registers,
    }),
    invalidationLag: new Histogram({
      name: 'concord_cache_invalidation_lag_seconds',
      help: 'Time from a change’s commit to this node applying its invalidations.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    flushes: new Counter({
      name: 'concord_cache_flushes_total',
      help: 'Whole-L1 flushes (log pruned past the cursor, doorbell lost), by reason.',
      labelNames: ['reason'],
      registers,
    }),
    l1Bytes: new Gauge({ name: 'concord_cache_l1_bytes', help: 'Bytes held by L1.', registers }),
    l1Entries: new Gauge({ name: 'concord_cache_l1_entries', help: 'Entries held by L1.', registers }),
    l2Errors: new Counter({
      name: 'concord_cache_l2_errors_total',
      help: 'L2 (Redis) commands that failed or timed out; the node answered from L1 and the database.',
      registers,
    }),
    l2Available: new Gauge({
      name: 'concord_cache_l2_available',
      help: '1 while the L2 (Redis) connection is up, 0 otherwise (absent in embedded mode).',
      registers,
    }),
  };
}

export type CacheMetrics = ReturnType<typeof createCacheMetrics>;
