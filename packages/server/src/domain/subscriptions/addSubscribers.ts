import type { Kysely } from 'kysely';
import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import type { Database, StreamRow } from '../../store/schema.js';
import { activeSubscriberIds, defaultColor, streamSnapshot } from '../streams/streamRecord.js';

/** Which of `userIds` are subscribed to channel `streamId` (one query, whatever their number). */
export async function subscribedAmong(
  db: Kysely<Database>,
  streamId: number,
  userIds: readonly number[],
): Promise<Set<number>> {
  if (userIds.length === 0) return new Set();
  const rows = await db
    .selectFrom('subscriptions')
    .select('user_id')
    .where('stream_id', '=', streamId)
    .where('user_id', 'in', [...userIds])
    .execute();
  return new Set(rows.map((r) => r.user_id));
}

/**
 * Subscribes `userIds` (none of them subscribed yet) to `stream`: one insert of their rows and the
 * one `subscription.added` change that tells every client. Permission checks are the caller's.
 */
export async function addSubscribers(
  ctx: CommandContext,
  stream: StreamRow,
  userIds: readonly number[],
): Promise<void> {
  if (userIds.length === 0) return;
  await ctx.trx
    .insertInto('subscriptions')
    .values(
      userIds.map((userId) => ({
        realm_id: ctx.realmId,
        user_id: userId,
        stream_id: stream.id,
        color: defaultColor(stream.id),
        is_muted: 0,
        pin_to_top: 0,
        date_created: ctx.now,
      })),
    )
    .execute();
  ctx.record({
    kind: 'subscription.added',
    payload: {
      streamId: stream.id,
      userIds: [...userIds],
      stream: streamSnapshot(stream),
      subscriberIds: await activeSubscriberIds(ctx.trx, stream.id),
    },
    cacheKeys: [cacheKey.subscribersOf(stream.id), ...userIds.map((id) => cacheKey.subscriptionsOf(id))],
    audience: { scope: 'stream', streamId: stream.id, inviteOnly: stream.invite_only === 1 },
  });
}
