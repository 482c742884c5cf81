import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { Registry } from 'prom-client';
import { createCacheMetrics } from '../packages/server/src/cache/cacheMetrics.js';
import { TieredCache } from '../packages/server/src/cache/tieredCache.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * Cache gets per second from a warm in-process tier: Concord's L1 (TieredCache.get, as every hot
 * read calls it) against BentoCache's memory tier (`get`; values kept as objects, as ours are:
 * `serialize: false`), same keys, same values (user-sized objects), one process, alternating rounds. The loaders are never called: both are warm.
 */
const KEYS = Number(process.env.BENCH_KEYS ?? 10_000);
const OPS = Number(process.env.BENCH_OPS ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const value = (i: number) => ({
  id: i,
  full_name: `Person ${i}`,
  delivery_email: `person${i}@example.com`,
  role: 400,
  is_active: 1,
  avatar_version: 1,
  timezone: '',
});
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`);

const concord = new TieredCache({ maxBytes: 256 * 1024 * 1024, metrics: createCacheMetrics(new Registry()) });
for (let i = 0; i < KEYS; i++) concord.fillL1(keys[i]!, Object.freeze(value(i)), 1, 200);
const never = async () => {
  throw new Error('warm cache: the loader must not run');
};

const bento = new BentoCache({
  default: 'memory',
  stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: KEYS * 2, serialize: false })) },
});
for (let i = 0; i < KEYS; i++) await bento.set({ key: keys[i]!, value: value(i), ttl: '1h' });

async function timeConcord(): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < OPS; i++) await concord.get(keys[i % KEYS]!, never);
  return OPS / ((performance.now() - t0) / 1000);
}
async function timeBento(): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < OPS; i++) await bento.get({ key: keys[i % KEYS]! });
  return OPS / ((performance.now() - t0) / 1000);
}

// Warm up both (JIT), then alternate.
await timeConcord();
await timeBento();
const c: number[] = [];
const b: number[] = [];
const rows: Record<string, string | number>[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const x = await timeConcord();
  const y = await timeBento();
  c.push(x);
  b.push(y);
  rows.push({ round: r + 1, 'concord gets/s': Math.round(x), 'bentocache gets/s': Math.round(y) });
}
printTable(
  `warm in-process cache gets, ${KEYS} keys, ${OPS} gets per round; 1 process on ${cpus().length} cores`,
  rows,
);
const sc = summarize(c);
const sb = summarize(b);
await report('cache-gets', [
  {
    name: 'cache-gets-l1',
    metric: 'gets_per_s',
    concord: sc.median,
    reference: 'bentocache-memory',
    reference_value: sb.median,
    ratio: sc.median / sb.median,
    higher_is_better: true,
    goal: '>=1.0',
    rounds: ROUNDS,
    spread: Math.max(sc.spread, sb.spread),
  },
]);
await bento.disconnect();
