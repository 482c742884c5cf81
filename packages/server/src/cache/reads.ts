import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { cacheKey } from '../changelog/change.js';
import type { Database, UserRow } from '../store/schema.js';
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
  ) {}

  /** One user of the realm by id, or null. */
  user(id: number): Promise<UserRow | null> {
    return this.cache.get(cacheKey.user(id), () => loadUser(this.store.db, this.realmId, id));
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
        const rows = await db
          .selectFrom('users')
          .selectAll()
          .where('realm_id', '=', this.realmId)
          .orderBy('id')
          .execute();
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
    const db = this.store.db;
    const find = () =>
      db
        .selectFrom('users')
        .select(['id', headSeq.as('head')])
        .where('realm_id', '=', this.realmId)
        .where('email_key', '=', emailKey)
        .executeTakeFirst();
    const id = await this.cache.get(cacheKey.userByEmail(this.realmId, emailKey), async () => {
      const row = await find();
      if (row) return { value: row.id, seq: Number(row.head) };
      return absentSince(db, async () => (await find())?.id ?? null);
    });
    return id === null ? null : this.user(id);
  }
}

/** Reads one user and the log head in one statement (the loader behind {@link CachedReads.user}). */
export async function loadUser(
  db: Kysely<Database>,
  realmId: number,
  id: number,
): Promise<Loaded<UserRow | null>> {
  const row = await db
    .selectFrom('users')
    .selectAll()
    .select(headSeq.as('_head'))
    .where('realm_id', '=', realmId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (row) return { value: freezeUser(row), seq: Number(row._head) };
  return absentSince(db, async () => {
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

/** Runs `read` and reads the log head in one database snapshot. */
function inSnapshot<T>(store: Store, read: (db: Kysely<Database>) => Promise<T>): Promise<Loaded<T>> {
  return store.readSnapshot(async (db) => {
    const head = await db.selectFrom('changelog_head').select('seq').where('id', '=', 1).executeTakeFirst();
    return { value: await read(db), seq: head?.seq ?? 0 };
  });
}

/**
 * A read that found nothing has no head beside it: read the head first, then read again. The value
 * is then current at least as of that head (a row created after it would show in the second read),
 * which is all the fill guard needs — a position no later than the data's.
 */
async function absentSince<T>(db: Kysely<Database>, read: () => Promise<T>): Promise<Loaded<T>> {
  const head = await db.selectFrom('changelog_head').select('seq').where('id', '=', 1).executeTakeFirst();
  return { value: await read(), seq: head?.seq ?? 0 };
}
