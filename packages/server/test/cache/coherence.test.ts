import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadUser } from '../../src/cache/reads.js';
import { cacheKey } from '../../src/changelog/change.js';
import { notifyChannel } from '../../src/changelog/doorbell.js';
import { updateUser } from '../../src/domain/users/updateUser.js';
import { backends } from '../support/backends.js';
import type { CacheWorld } from './harness.js';
import { cacheWorld, metricValue } from './harness.js';

const waitUntil = async (check: () => boolean | Promise<boolean>, ms: number, what: string) => {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe.each(backends())('cache coherence on %s', (backend) => {
  let world: CacheWorld;
  beforeAll(async () => {
    world = await cacheWorld(backend);
  });
  afterAll(async () => world?.close());

  const read = (node: ReturnType<CacheWorld['node']>, id: number) =>
    node.cache.get(cacheKey.user(id), () => loadUser(world.store, world.realmId, id));

  it('a node that finds the log pruned past its cursor flushes L1 and reads again', async () => {
    const node = world.node();
    await node.follow();
    const user = await world.addUser('Gus Before');
    expect((await read(node, user.id))?.full_name).toBe('Gus Before');
    // The consumer is away while another node renames the user and retention removes the change.
    await node.coherence!.tail.stop();
    await world.otherLog.run(world.realmId, (ctx) =>
      updateUser(ctx, world.owner, user.id, { fullName: 'Gus After' }),
    );
    await world.log.prune({ maxAgeMs: 0, maxCount: 0 });
    // Without the consumer, the cached value is still the old one...
    expect((await read(node, user.id))?.full_name).toBe('Gus Before');
    node.coherence!.tail.start();
    await node.coherence!.tail.catchUp();
    // ...and after the gap is found, L1 is flushed: the read goes to the database.
    expect(await metricValue(node.registry, 'concord_cache_flushes_total', { reason: 'pruned' })).toBe(1);
    expect((await read(node, user.id))?.full_name).toBe('Gus After');
  });

  it.skipIf(backend !== 'postgres')(
    'while its doorbell connection is down a node reads through to the database, and serves from the cache again once caught up',
    async () => {
      // A slow safety-net poll: only the doorbell would tell this node of changes quickly.
      const node = world.node({ pollMs: 60_000 });
      await node.follow();
      const user = await world.addUser('Hal Before');
      expect((await read(node, user.id))?.full_name).toBe('Hal Before');
      // Kill this database's LISTEN connection (the doorbell), as a network fault would.
      const admin = new pg.Client({ connectionString: process.env.CONCORD_TEST_PG });
      await admin.connect();
      try {
        const killed = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`,
          [`LISTEN "${notifyChannel(world.store.scope)}"`],
        );
        expect(killed.rowCount).toBe(1);
      } finally {
        await admin.end();
      }
      await waitUntil(() => node.cache.suspended, 5000, 'cache suspended after the doorbell dropped');
      // Another node's change, which this node's consumer has not applied: read through, fresh.
      await world.otherLog.run(world.realmId, (ctx) =>
        updateUser(ctx, world.owner, user.id, { fullName: 'Hal After' }),
      );
      expect((await read(node, user.id))?.full_name).toBe('Hal After');
      // The doorbell reconnects; the node catches up and serves from L1 again.
      await waitUntil(() => !node.cache.suspended, 15_000, 'cache resumed after the doorbell returned');
      expect(node.coherence!.tail.cursor).toBe(await world.log.head());
      const loads = await metricValue(node.registry, 'concord_cache_loads_total');
      expect((await read(node, user.id))?.full_name).toBe('Hal After');
      expect((await read(node, user.id))?.full_name).toBe('Hal After');
      expect(await metricValue(node.registry, 'concord_cache_loads_total')).toBe(loads + 1);
    },
  );
});
