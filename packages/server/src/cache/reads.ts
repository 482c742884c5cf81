import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { cacheKey } from '../changelog/change.js';
import { streamsOfRealm } from '../domain/streams/streamQueries.js';
import { usersOfRealm } from '../domain/users/userRecord.js';
import type { SnapshotOptions, SnapshotRows } from '../events/snapshot.js';
import { needsMembers, needsUsers } from '../events/snapshot.js';
import type { Database, StreamRow, SubscriptionRow, UserRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import type { Loaded, TieredCache } from './tieredCache.js';

/** The log head, read in the same statement (and so the same snapshot) as the rows beside it. */
const headSeq = sql<number>`(SELECT seq FROM changelog_head WHERE id = 1)`;

/**
 * The hot reads, through the cache. Every loader reads its rows and the log head in one snapshot
 * (one statement, or {@link Store.readSnapshot}), which is the position the cache's fill guard
 * compares with invalidations. Values are frozen: they are shared by every request.
 */
export class CachedReads {
  constructor(
    private readonly store: Store,
    private readonly cache: TieredCache,
    private readonly realmId: number,
    /** The log position up to which the cache has applied every invalidation (its consumer's cursor). */
    private readonly cursor: () => number,
  ) {}

  /** One user of the realm by id, or null. */
  user(id: number): Promise<UserRow | null> {
    return this.cache.get(cacheKey.user(id), () => loadUser(this.store, this.realmId, id));
  }

  /** Every channel of the realm (archived ones included), by id. */
  streams(): Promise<readonly StreamRow[]> {
    return this.cache.get(cacheKey.streamsOfRealm(this.realmId), () =>
      inSnapshot(this.store, async (db) => {
        const rows = await streamsOfRealm(db, this.realmId);
        return Object.freeze(rows.map((r) => Object.freeze(r)));
      }),
    );
  }

  /** Every subscription of one user (to archived channels too). */
  subscriptionsOf(userId: number): Promise<readonly SubscriptionRow[]> {
    return this.cache.get(cacheKey.subscriptionsOf(userId), () =>
      inSnapshot(this.store, async (db) => {
        const rows = await db
          .selectFrom('subscriptions')
          .selectAll()
          .where('user_id', '=', userId)
          .orderBy('stream_id')
          .execute();
        return Object.freeze(rows.map((r) => Object.freeze(r)));
      }),
    );
  }

  /**
   * The rows of a register for `userId`, all as of one log position, from L1; null when L1 cannot
   * give them (the caller then reads the database). Every value is taken synchronously at the
   * cache's cursor C. A value in L1 read at a position at or before C is the value at C: any change
   * to it up to C was applied, and would have removed it. A value read after C (ahead of the
   * consumer) may reflect changes the others do not, so its presence makes the cache unusable for
   * this register. On a warm node everything is there at once; otherwise what is missing is read
   * through, and the rows are taken once more.
   */
  async registerRows(userId: number, opts: SnapshotOptions): Promise<SnapshotRows | null> {
    const warm = this.takeRegisterRows(userId, opts);
    if (warm) return warm;
    const [, , streams] = await Promise.all([
      this.user(userId),
      this.subscriptionsOf(userId),
      this.streams(),
      needsUsers(opts) ? this.users() : null,
    ]);
    if (needsMembers(opts)) await Promise.all(streams.map((s) => this.subscribers(s.id)));
    return this.takeRegisterRows(userId, opts);
  }

  /** {@link registerRows} from what L1 holds now, synchronously (no invalidation can interleave). */
  private takeRegisterRows(userId: number, opts: SnapshotOptions): SnapshotRows | null {
    const at = this.cursor();
    let usable = true;
    const take = <T>(key: string): T | undefined => {
      const entry = this.cache.peekEntry<T>(key);
      if (!entry || entry.seq > at) usable = false;
      return entry?.value;
    };
    const me = take<UserRow | null>(cacheKey.user(userId));
    const mySubs = take<readonly SubscriptionRow[]>(cacheKey.subscriptionsOf(userId));
    const listed = take<readonly StreamRow[]>(cacheKey.streamsOfRealm(this.realmId));
    const users = needsUsers(opts) ? take<readonly UserRow[]>(cacheKey.usersOfRealm(this.realmId)) : null;
    let members: Map<number, readonly number[]> | null = null;
    if (needsMembers(opts) && usable) {
      members = new Map();
      for (const s of listed!) members.set(s.id, take<readonly number[]>(cacheKey.subscribersOf(s.id)) ?? []);
    }
    if (!usable) return null;
    return { seq: at, me: me ?? undefined, mySubs: mySubs!, streams: listed!, users: users ?? null, members };
  }

  /**
   * The user `id` if L1 holds it (for a path that can then finish synchronously); undefined when
   * it would have to read, null for a user known not to exist.
   */
  peekUser(id: number): UserRow | null | undefined {
    return this.cache.peek<UserRow | null>(cacheKey.user(id));
  }

  /** Every user of the realm (active and deactivated), by id. */
  users(): Promise<readonly UserRow[]> {
    return this.cache.get(cacheKey.usersOfRealm(this.realmId), () =>
      inSnapshot(this.store, async (db) => {
        const rows = await usersOfRealm(db, this.realmId);
        return Object.freeze(rows.map((r) => Object.freeze(r)));
      }),
    );
  }

  /** The active subscribers of a channel, by user id (the channel's existence is not checked). */
  subscribers(streamId: number): Promise<readonly number[]> {
    return this.cache.get(cacheKey.subscribersOf(streamId), () =>
      inSnapshot(this.store, async (db) => {
        const rows = await db
          .selectFrom('subscriptions')
          .innerJoin('users', 'users.id', 'subscriptions.user_id')
          .select('subscriptions.user_id')
          .where('subscriptions.stream_id', '=', streamId)
          .where('users.is_active', '=', 1)
          .orderBy('subscriptions.user_id')
          .execute();
        return Object.freeze(rows.map((r) => r.user_id));
      }),
    );
  }

  /**
   * The user an API e-mail (address or placeholder) names, if L1 holds everything needed to say:
   * the user, or null for "no such user"; undefined when it would have to read.
   */
  peekUserByApiEmail(email: string): UserRow | null | undefined {
    const key = email.trim().toLowerCase();
    const id = this.cache.peek<number | null>(cacheKey.userByEmail(this.realmId, key));
    if (id === undefined) return undefined;
    if (id === null) return /^user\d{1,10}@/.test(key) ? undefined : null;
    return this.cache.peek<UserRow | null>(cacheKey.user(id));
  }

  /** The user whose lower-cased address is `emailKey`, or null. */
  async userByEmailKey(emailKey: string): Promise<UserRow | null> {
    const find = (db: Kysely<Database>) =>
      db
        .selectFrom('users')
        .select(['id', headSeq.as('head')])
        .where('realm_id', '=', this.realmId)
        .where('email_key', '=', emailKey)
        .executeTakeFirst();
    const id = await this.cache.get(cacheKey.userByEmail(this.realmId, emailKey), async () => {
      const row = await find(this.store.db);
      if (row) return { value: row.id, seq: Number(row.head) };
      return inSnapshot(this.store, async (trx) => (await find(trx))?.id ?? null);
    });
    return id === null ? null : this.user(id);
  }
}

/** Reads one user and the log head in one statement (the loader behind {@link CachedReads.user}). */
export async function loadUser(store: Store, realmId: number, id: number): Promise<Loaded<UserRow | null>> {
  const row = await store.db
    .selectFrom('users')
    .selectAll()
    .select(headSeq.as('_head'))
    .where('realm_id', '=', realmId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (row) return { value: freezeUser(row), seq: Number(row._head) };
  return inSnapshot(store, async (db) => {
    const again = await db
      .selectFrom('users')
      .selectAll()
      .select(headSeq.as('_head'))
      .where('id', '=', id)
      .where('realm_id', '=', realmId)
      .executeTakeFirst();
    return again ? freezeUser(again) : null;
  });
}

function freezeUser(row: UserRow & { _head: number }): UserRow {
  const { _head: _omit, ...user } = row;
  return Object.freeze(user);
}

/**
 * Runs `read` and reads the log head in one database snapshot: the value is exactly the value at
 * that position (which the fill guard, and a register read from the cache, rely on).
 */
function inSnapshot<T>(store: Store, read: (db: Kysely<Database>) => Promise<T>): Promise<Loaded<T>> {
  return store.readSnapshot(async (db) => {
    const head = await db.selectFrom('changelog_head').select('seq').where('id', '=', 1).executeTakeFirst();
    return { value: await read(db), seq: head?.seq ?? 0 };
  });
}
