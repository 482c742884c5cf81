import type { TieredCache } from '../cache/tieredCache.js';
import { cacheKey } from '../changelog/change.js';
import { streamsOfRealm } from '../domain/streams/streamQueries.js';
import type { Store } from '../store/store.js';
import type { Readiness } from './readiness.js';

const PAGE = 10_000;

/**
 * Lets the event loop run between pages: on SQLite every read is synchronous, and without this the
 * node could not answer /readyz or the status stream while it loads.
 */
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Loads what the hot reads need into L1, all read in one database snapshot at one log position,
 * and returns that position: the node's cache consumer continues from it. Pages by primary key so
 * progress can be reported and memory stays flat while reading.
 */
export async function warmCache(
  store: Store,
  cache: TieredCache,
  realmId: number,
  readiness: Readiness,
): Promise<number> {
  return store.readSnapshot(async (db) => {
    const head = await db.selectFrom('changelog_head').select('seq').where('id', '=', 1).executeTakeFirst();
    const seq = head?.seq ?? 0;
    const count = async (table: 'users' | 'subscriptions') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .where('realm_id', '=', realmId)
            .executeTakeFirst()
        )?.n ?? 0,
      );
    const totalUsers = await count('users');
    const totalSubs = await count('subscriptions');
    readiness.progress('users', 0, totalUsers);
    readiness.progress('subscriptions', 0, totalSubs);

    const users = [];
    const active = new Set<number>();
    for (let after = 0; ;) {
      const page = await db
        .selectFrom('users')
        .selectAll()
        .where('realm_id', '=', realmId)
        .where('id', '>', after)
        .orderBy('id')
        .limit(PAGE)
        .execute();
      for (const row of page) {
        const user = Object.freeze(row);
        users.push(user);
        if (user.is_active) active.add(user.id);
        const size = JSON.stringify(user).length;
        cache.fillL1(cacheKey.user(user.id), user, seq, size);
        if (user.email_key) cache.fillL1(cacheKey.userByEmail(realmId, user.email_key), user.id, seq, 16);
      }
      readiness.progress('users', users.length, totalUsers);
      await yieldToLoop();
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.id;
    }
    cache.fillL1(cacheKey.usersOfRealm(realmId), Object.freeze(users), seq, users.length * 300);

    // Subscribers per channel, active users only (what the members endpoint returns), in user order.
    const byStream = new Map<number, number[]>();
    let loaded = 0;
    for (let after = 0; ;) {
      const page = await db
        .selectFrom('subscriptions')
        .select(['id', 'stream_id', 'user_id'])
        .where('realm_id', '=', realmId)
        .where('id', '>', after)
        .orderBy('id')
        .limit(PAGE * 5)
        .execute();
      for (const s of page) {
        if (!active.has(s.user_id)) continue;
        let list = byStream.get(s.stream_id);
        if (!list) byStream.set(s.stream_id, (list = []));
        list.push(s.user_id);
      }
      loaded += page.length;
      readiness.progress('subscriptions', loaded, totalSubs);
      await yieldToLoop();
      if (page.length < PAGE * 5) break;
      after = page[page.length - 1]!.id;
    }
    const streams = await streamsOfRealm(db, realmId);
    cache.fillL1(
      cacheKey.streamsOfRealm(realmId),
      Object.freeze(streams.map((s) => Object.freeze(s))),
      seq,
      streams.length * 200,
    );
    for (const { id } of streams) {
      const list = (byStream.get(id) ?? []).sort((a, b) => a - b);
      cache.fillL1(cacheKey.subscribersOf(id), Object.freeze(list), seq, 8 + list.length * 8);
    }
    return seq;
  });
}
