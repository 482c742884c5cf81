import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachedReads } from '../../src/cache/reads.js';
import type { ChangeLog } from '../../src/changelog/log.js';
import { deactivateUser } from '../../src/domain/users/deactivateUser.js';
import { reactivateUser } from '../../src/domain/users/reactivateUser.js';
import { updateUser } from '../../src/domain/users/updateUser.js';
import type { UserRow } from '../../src/store/schema.js';
import type { CacheWorld } from './harness.js';
import { cacheWorld, gate } from './harness.js';

const RUNS = Number(process.env.CONCORD_CACHE_PROPERTY_RUNS ?? 200);

/** A store whose loads can be held between the database read and the fill, one at a time. */
function pausingReads(world: CacheWorld, node: ReturnType<CacheWorld['node']>) {
  const held: { release(): void }[] = [];
  let holdNext = false;
  const store = {
    ...world.store,
    readSnapshot: world.store.readSnapshot.bind(world.store),
  };
  const reads = new CachedReads(store, node.cache, world.realmId, () => 0);
  // Wrap the cache's loader calls: when asked, the next load is held after it read.
  const get = node.cache.get.bind(node.cache);
  node.cache.get = (<T>(key: string, load: () => Promise<{ value: T; seq: number }>) =>
    get(key, async () => {
      const loaded = await load();
      if (holdNext) {
        holdNext = false;
        const g = gate();
        held.push({ release: () => g.open() });
        await g.promise;
      }
      return loaded;
    })) as typeof node.cache.get;
  return {
    reads,
    /** Holds the next load, if the next read loads at all (an L1 hit does not). */
    holdNextLoad: (on: boolean) => (holdNext = on),
    releaseOne: () => held.shift()?.release(),
    releaseAll: () => held.splice(0).forEach((h) => h.release()),
  };
}

type Op =
  | { op: 'rename'; user: number; by: 'this' | 'other'; name: number }
  | { op: 'deactivate' | 'reactivate'; user: number; by: 'this' | 'other' }
  | { op: 'read'; user: number; hold: boolean; via: 'id' | 'email' | 'all' }
  | { op: 'release' }
  | { op: 'catchUp' };

const opArb = (users: number): fc.Arbitrary<Op> =>
  fc.oneof(
    fc.record({
      op: fc.constant('rename' as const),
      user: fc.nat(users - 1),
      by: fc.constantFrom('this' as const, 'other' as const),
      name: fc.nat(999),
    }),
    fc.record({
      op: fc.constantFrom('deactivate' as const, 'reactivate' as const),
      user: fc.nat(users - 1),
      by: fc.constantFrom('this' as const, 'other' as const),
    }),
    fc.record({
      op: fc.constant('read' as const),
      user: fc.nat(users - 1),
      hold: fc.boolean(),
      via: fc.constantFrom('id' as const, 'email' as const, 'all' as const),
    }),
    fc.constant({ op: 'release' as const }),
    fc.constant({ op: 'catchUp' as const }),
  );

/*
 * No stale fill, as a property: random interleavings of this node's and another node's commits with
 * reads that may be held between their database read and their fill. Once every held read is
 * released and the node has caught up with the log, everything the cache serves equals the database.
 */
describe('no stale fill (property, SQLite)', () => {
  let world: CacheWorld;
  let users: UserRow[];
  beforeAll(async () => {
    world = await cacheWorld('sqlite');
    users = [];
    for (let i = 0; i < 4; i++) users.push(await world.addUser(`Person ${i}`));
  });
  afterAll(async () => world?.close());

  it(`holds over ${RUNS} random interleavings`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb(users.length), { minLength: 5, maxLength: 30 }), async (ops) => {
        // Another node's commits reach this one only through the log; its safety-net poll is slow,
        // so only `catchUp` applies them (the widest window for a stale fill).
        const node = world.node({ pollMs: 60_000 });
        await node.follow();
        const p = pausingReads(world, node);
        const pending: Promise<unknown>[] = [];
        const logOf = (by: 'this' | 'other'): ChangeLog => (by === 'this' ? world.log : world.otherLog);
        try {
          for (const o of ops) {
            const u = users['user' in o ? o.user : 0]!;
            if (o.op === 'rename')
              await logOf(o.by).run(world.realmId, (ctx) =>
                updateUser(ctx, world.owner, u.id, { fullName: `Name ${o.name}` }),
              );
            else if (o.op === 'deactivate' || o.op === 'reactivate')
              await logOf(o.by)
                .run(world.realmId, (ctx) =>
                  (o.op === 'deactivate' ? deactivateUser : reactivateUser)(ctx, world.owner, u.id),
                )
                .catch(() => {}); // already (de)activated: nothing changes
            else if (o.op === 'read') {
              p.holdNextLoad(o.hold);
              const r =
                o.via === 'id'
                  ? p.reads.user(u.id)
                  : o.via === 'email'
                    ? p.reads.userByEmailKey(u.email_key!)
                    : p.reads.users();
              pending.push(r);
              // Let the read reach the database before the next operation.
              await new Promise((res) => setImmediate(res));
              p.holdNextLoad(false);
            } else if (o.op === 'release') p.releaseOne();
            else await node.coherence!.tail.catchUp();
          }
          p.releaseAll();
          await Promise.all(pending);
          await node.coherence!.tail.catchUp();
          for (const u of users) {
            const fresh = await world.store.db
              .selectFrom('users')
              .selectAll()
              .where('id', '=', u.id)
              .executeTakeFirstOrThrow();
            expect(await p.reads.user(u.id)).toEqual(fresh);
            expect(await p.reads.userByEmailKey(u.email_key!)).toEqual(fresh);
            expect((await p.reads.users()).find((x) => x.id === u.id)).toEqual(fresh);
          }
        } finally {
          p.releaseAll();
          await node.close();
        }
      }),
      { numRuns: RUNS, seed: Number(process.env.CONCORD_FUZZ_SEED ?? 20261123) },
    );
  }, 120_000);
});
