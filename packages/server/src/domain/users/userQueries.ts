import type { Kysely } from 'kysely';
import type { Database, UserRow } from '../../store/schema.js';

/** Every user of the realm (active and deactivated), by id. */
export function listUsers(db: Kysely<Database>, realmId: number, userIds?: number[]): Promise<UserRow[]> {
  let q = db.selectFrom('users').selectAll().where('realm_id', '=', realmId);
  if (userIds) q = q.where('id', 'in', userIds.length > 0 ? userIds : [-1]);
  return q.orderBy('id').execute();
}

/** One user of the realm by id, if any. */
export function getUser(db: Kysely<Database>, realmId: number, userId: number): Promise<UserRow | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where('realm_id', '=', realmId)
    .where('id', '=', userId)
    .executeTakeFirst();
}
