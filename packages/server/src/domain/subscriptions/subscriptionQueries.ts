import type { Kysely } from 'kysely';
import type { Database, StreamRow, SubscriptionRow } from '../../store/schema.js';

/** A subscription with its channel. */
export interface SubscriptionView {
  subscription: SubscriptionRow;
  stream: StreamRow;
}

/** The user's subscriptions to live channels, by channel id. */
export async function listSubscriptions(db: Kysely<Database>, userId: number): Promise<SubscriptionView[]> {
  const rows = await db
    .selectFrom('subscriptions')
    .innerJoin('streams', 'streams.id', 'subscriptions.stream_id')
    .selectAll('subscriptions')
    .select([
      'streams.name',
      'streams.name_key',
      'streams.description',
      'streams.invite_only',
      'streams.history_public_to_subscribers',
      'streams.is_archived',
      'streams.creator_id',
      'streams.date_created as stream_date_created',
    ])
    .where('subscriptions.user_id', '=', userId)
    .where('streams.is_archived', '=', 0)
    .orderBy('streams.id')
    .execute();
  return rows.map((r) => ({
    subscription: {
      id: r.id,
      realm_id: r.realm_id,
      user_id: r.user_id,
      stream_id: r.stream_id,
      color: r.color,
      is_muted: r.is_muted,
      pin_to_top: r.pin_to_top,
      date_created: r.date_created,
    },
    stream: {
      id: r.stream_id,
      realm_id: r.realm_id,
      name: r.name,
      name_key: r.name_key,
      description: r.description,
      invite_only: r.invite_only,
      history_public_to_subscribers: r.history_public_to_subscribers,
      is_archived: r.is_archived,
      creator_id: r.creator_id,
      date_created: r.stream_date_created,
    },
  }));
}

/** Active subscribers of each of these channels. */
export async function subscribersOf(
  db: Kysely<Database>,
  streamIds: number[],
): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>(streamIds.map((id) => [id, []]));
  if (streamIds.length === 0) return out;
  const rows = await db
    .selectFrom('subscriptions')
    .innerJoin('users', 'users.id', 'subscriptions.user_id')
    .select(['subscriptions.stream_id', 'subscriptions.user_id'])
    .where('subscriptions.stream_id', 'in', streamIds)
    .where('users.is_active', '=', 1)
    .orderBy('subscriptions.user_id')
    .execute();
  for (const r of rows) out.get(r.stream_id)?.push(r.user_id);
  return out;
}
