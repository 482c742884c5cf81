import { LRUCache } from 'lru-cache';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadUser } from '../../src/cache/reads.js';
import { cacheKey } from '../../src/changelog/change.js';
import { updateUser } from '../../src/domain/users/updateUser.js';
import type { UserRow } from '../../src/store/schema.js';
import { backends } from '../support/backends.js';
import type { CacheWorld } from './harness.js';
import { cacheWorld, gate, l2Raw, metricValue } from './harness.js';

/*
 * The race of incident 1: a reader reads a user at log position S, is paused before it fills the
 * cache, a writer commits a change after S and invalidates, then the reader resumes and writes its
 * old value back. The old value must never be stored, in L1 or L2.
 */
describe.each(backends())('stale fill on %s', (backend) => {
  let world: CacheWorld;
  beforeAll(async () => {
    world = await cacheWorld(backend);
  });
  afterAll(async () => world?.close());

  const rename = (user: UserRow, fullName: string) =>
    world.log.run(world.realmId, (ctx) => updateUser(ctx, world.owner, user.id, { fullName }));

  /** A loader that reads the user (row and head in one statement), then waits at `paused`. */
  function pausedLoader(userId: number) {
    const read = gate<UserRow | null>();
    const resume = gate();
    const load = async () => {
      const loaded = await loadUser(world.store, world.realmId, userId);
      read.open(loaded.value);
      await resume.promise;
      return loaded;
    };
    return { load, read: read.promise, resume: () => resume.open() };
  }

  it('negative control: a read-through cache without the guard stores the old value in this interleaving', async () => {
    const user = await world.addUser('Ada Before');
    const naive = new LRUCache<string, UserRow>({ max: 100 });
    const key = cacheKey.user(user.id);
    const reader = pausedLoader(user.id);
    // The naive cache: load, then set; invalidation deletes the key.
    const reading = reader.load().then(({ value }) => naive.set(key, value!));
    await reader.read;
    await rename(user, 'Ada After');
    naive.delete(key);
    reader.resume();
    await reading;
    expect(naive.get(key)?.full_name).toBe('Ada Before');
  });

  it('a reader paused between its read and its fill while a writer commits: the old value is stored in neither L1 nor L2', async () => {
    const node = world.node({ l2: true });
    await node.follow();
    const user = await world.addUser('Bea Before');
    const key = cacheKey.user(user.id);

    const reader = pausedLoader(user.id);
    const reading = node.cache.get(key, reader.load);
    expect((await reader.read)?.full_name).toBe('Bea Before');
    await rename(user, 'Bea After');
    reader.resume();
    // The paused request itself answers what it read (it began before the change)...
    expect((await reading)?.full_name).toBe('Bea Before');
    await node.cache.settled();
    // ...but nothing stored it: the refusal is counted, L2 holds no value, and the next read loads.
    expect(await metricValue(node.registry, 'concord_cache_stale_fills_refused_total', { tier: 'l1' })).toBe(
      1,
    );
    const raw = await l2Raw(world.scope, key);
    expect(raw.v).toBeNull();
    expect(Number(raw.i)).toBeGreaterThan(0);
    let loads = 0;
    const fresh = await node.cache.get(key, () => {
      loads++;
      return loadUser(world.store, world.realmId, user.id);
    });
    expect(loads).toBe(1);
    expect(fresh?.full_name).toBe('Bea After');
    await node.cache.settled();
    expect((await l2Raw(world.scope, key)).v).toContain('Bea After');
  });

  it('a lagging node that read before the change cannot put its old value into L2 after another node invalidated it', async () => {
    const a = world.node({ l2: true });
    await a.follow();
    // Node B shares L2 but has not applied the change yet: its own ledger cannot refuse the fill.
    const b = world.node({ l2: true });
    await b.follow();
    await b.coherence!.stop();
    const user = await world.addUser('Cy Before');
    const key = cacheKey.user(user.id);

    const reader = pausedLoader(user.id);
    const reading = b.cache.get(key, reader.load);
    await reader.read;
    const { seq } = await rename(user, 'Cy After');
    await a.coherence!.tail.waitFor(seq!);
    await a.cache.settled();
    reader.resume();
    await reading;
    await b.cache.settled();
    expect(await metricValue(b.registry, 'concord_cache_stale_fills_refused_total', { tier: 'l2' })).toBe(1);
    expect((await l2Raw(world.scope, key)).v).toBeNull();
    // When B catches up, its L1 copy read before the change goes too.
    await b.follow(seq! - 1);
    await b.coherence!.tail.catchUp();
    let loads = 0;
    const fresh = await b.cache.get(key, () => {
      loads++;
      return loadUser(world.store, world.realmId, user.id);
    });
    expect(fresh?.full_name).toBe('Cy After');
    expect(loads).toBe(1);
  });

  it('an L2 value older than an invalidation this node applied is not served', async () => {
    const a = world.node({ l2: true });
    await a.follow();
    const user = await world.addUser('Di Before');
    const key = cacheKey.user(user.id);
    await a.cache.get(key, () => loadUser(world.store, world.realmId, user.id));
    await a.cache.settled();
    expect((await l2Raw(world.scope, key)).v).toContain('Di Before');
    // Simulate an invalidation that never reached Redis (Redis away at that moment): a fresh node
    // whose ledger knows of a change after the L2 value.
    const c = world.node({ l2: true });
    await c.follow();
    const raw = await l2Raw(world.scope, key);
    c.cache.ledger.record(key, Number(raw.s) + 1);
    const got = await c.cache.get(key, () => loadUser(world.store, world.realmId, user.id));
    expect(got?.full_name).toBe('Di Before');
    expect(await metricValue(c.registry, 'concord_cache_l2_stale_reads_refused_total')).toBe(1);
    expect(await metricValue(c.registry, 'concord_cache_loads_total')).toBe(1);
  });

  it('single flight: 50 concurrent misses of one key make one database read; an invalidation detaches it', async () => {
    const node = world.node();
    await node.follow();
    const user = await world.addUser('Ed Before');
    const key = cacheKey.user(user.id);
    const reader = pausedLoader(user.id);
    let loads = 0;
    const load = () => {
      loads++;
      return reader.load();
    };
    const first = Array.from({ length: 50 }, () => node.cache.get(key, load));
    await reader.read;
    await rename(user, 'Ed After');
    // Requests after the change do not join the flight that read before it.
    const later = node.cache.get(key, () => {
      loads++;
      return loadUser(world.store, world.realmId, user.id);
    });
    expect((await later)?.full_name).toBe('Ed After');
    reader.resume();
    const results = await Promise.all(first);
    expect(new Set(results.map((r) => r?.full_name))).toEqual(new Set(['Ed Before']));
    expect(loads).toBe(2);
  });
});
