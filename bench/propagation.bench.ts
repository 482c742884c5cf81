import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { redisBusDriver, redisDriver } from 'bentocache/drivers/redis';
import { freshPgSchema } from '../packages/server/test/support/backends.js';
import { createOwner } from './lib/owner.js';
import { startConcord } from './lib/processes.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * Propagation of one change between two nodes: a user renamed through node A (PostgreSQL + Redis,
 * the write acknowledged) until node B serves the new name to GET /api/v1/users/{id}; against
 * BentoCache (memory L1 + Redis L2 + Redis bus) propagating one key from one instance to another:
 * `set` on A acknowledged until `get` on B returns the new value. p50 and p99 per round.
 */
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REDIS = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
process.env.CONCORD_TEST_PG ??= 'postgres://postgres@127.0.0.1:5432/test';
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

const schema = await freshPgSchema();
const env = {
  DATABASE_URL: schema.url,
  REDIS_URL: REDIS,
  CONCORD_SECRET: 'bench-secret-bench-secret-bench-secret-01',
};
const a = await startConcord(env);
const b = await startConcord(env);
const redisAt = new URL(REDIS);
const connection = { host: redisAt.hostname, port: Number(redisAt.port || 6379) };
const bentoStore = () =>
  new BentoCache({
    default: 'tiered',
    stores: {
      tiered: bentostore()
        .useL1Layer(memoryDriver({ maxItems: 1000 }))
        .useL2Layer(redisDriver({ connection, prefix: `bench-${process.pid}` }))
        .useBus(redisBusDriver({ connection })),
    },
    prefix: `bench-${process.pid}`,
  });
const bentoA = bentoStore();
const bentoB = bentoStore();
try {
  const owner = await createOwner({ ...a.env });
  const auth = { authorization: owner.authorization };
  const nameOn = async (url: string) => {
    const res = await fetch(`${url}/api/v1/users/${owner.user_id}`, { headers: auth });
    return ((await res.json()) as { user: { full_name: string } }).user.full_name;
  };
  let n = 0;
  const concordOnce = async () => {
    const name = `Owner ${++n}`;
    const res = await fetch(`${a.url}/api/v1/users/${owner.user_id}`, {
      method: 'PATCH',
      headers: auth,
      body: new URLSearchParams({ full_name: name }),
    });
    if (res.status !== 200) throw new Error(`rename failed: ${res.status}`);
    await res.arrayBuffer();
    const t0 = performance.now();
    while ((await nameOn(b.url)) !== name);
    return performance.now() - t0;
  };
  const bentoOnce = async () => {
    const value = `v${++n}`;
    await bentoA.set({ key: 'user:1', value });
    const t0 = performance.now();
    while ((await bentoB.get({ key: 'user:1' })) !== value) await new Promise((r) => setImmediate(r));
    return performance.now() - t0;
  };
  // Both B sides start warm (the key in their L1).
  await nameOn(b.url);
  await bentoB.getOrSet({ key: 'user:1', factory: () => 'v0' });
  for (let i = 0; i < 10; i++) {
    await concordOnce();
    await bentoOnce();
  }
  const rows: Record<string, string | number>[] = [];
  const c50: number[] = [];
  const c99: number[] = [];
  const b50: number[] = [];
  const b99: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const cs: number[] = [];
    const bs: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      cs.push(await concordOnce());
      bs.push(await bentoOnce());
    }
    c50.push(quantile(cs, 0.5));
    c99.push(quantile(cs, 0.99));
    b50.push(quantile(bs, 0.5));
    b99.push(quantile(bs, 0.99));
    rows.push({
      round: r + 1,
      'concord p50 ms': quantile(cs, 0.5).toFixed(2),
      'concord p99 ms': quantile(cs, 0.99).toFixed(2),
      'bentocache p50 ms': quantile(bs, 0.5).toFixed(2),
      'bentocache p99 ms': quantile(bs, 0.99).toFixed(2),
    });
  }
  printTable(
    `propagation A -> B, ${SAMPLES} changes per round; 2 Concord processes (PostgreSQL + Redis) and this ` +
      `process (both BentoCache instances, the pollers) on ${cpus().length} cores`,
    rows,
  );
  const result = (name: string, cs: number[], bs: number[]) => {
    const sc = summarize(cs);
    const sb = summarize(bs);
    return {
      name,
      metric: 'ms',
      concord: sc.median,
      reference: 'bentocache-redis-bus',
      reference_value: sb.median,
      ratio: sc.median / sb.median,
      higher_is_better: false,
      goal: 'record (no goal set)',
      rounds: ROUNDS,
      spread: Math.max(sc.spread, sb.spread),
    };
  };
  await report('propagation', [result('propagation-p50', c50, b50), result('propagation-p99', c99, b99)]);
} finally {
  await bentoA.disconnect().catch(() => {});
  await bentoB.disconnect().catch(() => {});
  await a.stop();
  await b.stop();
  await schema.drop();
}
