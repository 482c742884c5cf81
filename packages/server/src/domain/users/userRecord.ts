import type { Kysely } from 'kysely';
import type { StreamRef, UserSnapshot } from '../../changelog/change.js';
import { fail } from '../../errors.js';
import type { Database, UserRow } from '../../store/schema.js';

/** The user with this id in this realm, or a BAD_REQUEST "No such user". */
export async function loadUser(db: Kysely<Database>, realmId: number, userId: number): Promise<UserRow> {
  const user = await db
    .selectFrom('users')
    .selectAll()
    .where('realm_id', '=', realmId)
    .where('id', '=', userId)
    .executeTakeFirst();
  if (!user) throw fail.noSuchUser(`user_id ${userId}`);
  return user;
}

/** The user's state as the change log records it. */
/** Every user of a realm, deactivated ones included, by id. */
export function usersOfRealm(db: Kysely<Database>, realmId: number): Promise<UserRow[]> {
  return db.selectFrom('users').selectAll().where('realm_id', '=', realmId).orderBy('id').execute();
}

export function userSnapshot(u: UserRow): UserSnapshot {
  return {
    id: u.id,
    delivery_email: u.delivery_email,
    full_name: u.full_name,
    role: u.role,
    is_active: u.is_active === 1,
    is_bot: u.is_bot === 1,
    avatar_version: u.avatar_version,
    timezone: u.timezone,
    date_joined: Number(u.date_joined),
  };
}

/** The channels the user is subscribed to, with their privacy; archived ones are marked. */
export async function subscribedStreams(db: Kysely<Database>, userId: number): Promise<StreamRef[]> {
  const rows = await db
    .selectFrom('subscriptions')
    .innerJoin('streams', 'streams.id', 'subscriptions.stream_id')
    .select(['streams.id', 'streams.invite_only', 'streams.is_archived'])
    .where('subscriptions.user_id', '=', userId)
    .orderBy('streams.id')
    .execute();
  // Archived channels keep their subscriptions, and clients that show them keep their member lists.
  return rows.map((r) =>
    r.is_archived
      ? { id: r.id, inviteOnly: r.invite_only === 1, archived: true }
      : { id: r.id, inviteOnly: r.invite_only === 1 },
  );
}

/** Number of active owners in the realm: the last one may not be demoted or deactivated. */
export async function countActiveOwners(db: Kysely<Database>, realmId: number): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('realm_id', '=', realmId)
    .where('role', '=', 100)
    .where('is_active', '=', 1)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
