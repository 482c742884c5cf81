import type { Kysely } from 'kysely';
import type { Database, StreamRow } from '../../store/schema.js';
import type { Actor } from '../roles.js';
import { isAdmin, isGuest } from '../roles.js';

/** A channel with what a viewer needs around it. */
export interface StreamView {
  stream: StreamRow;
  subscriberCount: number;
  subscribed: boolean;
}

/** Which channels a channel listing includes, as in Zulip's GET /streams. */
export interface StreamFilter {
  includePublic: boolean;
  includeSubscribed: boolean;
  includeAllActive: boolean;
  includeArchived: boolean;
  includeDefault?: boolean;
}

/** Every channel of a realm, archived ones included, by id. */
export function streamsOfRealm(db: Kysely<Database>, realmId: number): Promise<StreamRow[]> {
  return db.selectFrom('streams').selectAll().where('realm_id', '=', realmId).orderBy('id').execute();
}

/**
 * The channels `actor` may see, filtered as requested: public ones (not for guests), the ones the
 * actor is subscribed to, and with `includeAllActive` (administrators) every private one.
 */
export async function listStreams(
  db: Kysely<Database>,
  actor: Actor,
  filter: StreamFilter,
): Promise<StreamView[]> {
  const rows = await streamsOfRealm(db, actor.realm_id);
  const counts = await subscriberCounts(db, actor.realm_id);
  const mine = new Set(
    (await db.selectFrom('subscriptions').select('stream_id').where('user_id', '=', actor.id).execute()).map(
      (r) => r.stream_id,
    ),
  );
  return rows
    .filter((s) => {
      if (s.is_archived && !filter.includeArchived) return false;
      const subscribed = mine.has(s.id);
      if (filter.includeSubscribed && subscribed) return true;
      if (filter.includePublic && !s.invite_only && !isGuest(actor.role)) return true;
      if (filter.includeAllActive && isAdmin(actor.role)) return true;
      return false;
    })
    .map((stream) => ({
      stream,
      subscriberCount: counts.get(stream.id) ?? 0,
      subscribed: mine.has(stream.id),
    }));
}

/** Active subscribers per channel of the realm. */
export async function subscriberCounts(
  db: Kysely<Database>,
  realmId: number,
  streamId?: number,
): Promise<Map<number, number>> {
  let q = db
    .selectFrom('subscriptions')
    .innerJoin('users', 'users.id', 'subscriptions.user_id')
    .select(['subscriptions.stream_id', (eb) => eb.fn.countAll<number>().as('n')])
    .where('subscriptions.realm_id', '=', realmId)
    .where('users.is_active', '=', 1);
  if (streamId !== undefined) q = q.where('subscriptions.stream_id', '=', streamId);
  const rows = await q.groupBy('subscriptions.stream_id').execute();
  return new Map(rows.map((r) => [r.stream_id, Number(r.n)]));
}
