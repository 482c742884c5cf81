import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { ConcordError, fail } from '../../errors.js';
import type { Actor } from '../roles.js';
import { isAdmin } from '../roles.js';
import {
  activeSubscriberIds,
  canAccessStream,
  findStreamByName,
  isSubscribed,
  streamSnapshot,
} from '../streams/streamRecord.js';
import { loadUser } from '../users/userRecord.js';

export interface UnsubscribeInput {
  streamNames: string[];
  /** User ids to unsubscribe; the actor when empty. */
  principals: number[];
}

export interface UnsubscribeResult {
  removed: string[];
  notRemoved: string[];
}

/**
 * Unsubscribes users from channels by name. Anyone may leave; only administrators remove others.
 * Appends one `subscription.removed` per channel that lost members.
 */
export async function unsubscribe(
  ctx: CommandContext,
  actor: Actor,
  input: UnsubscribeInput,
): Promise<UnsubscribeResult> {
  if (input.streamNames.length === 0) throw fail.badRequest('Nothing to do. Specify at least one channel.');
  const principals = input.principals.length > 0 ? [...new Set(input.principals)] : [actor.id];
  if (principals.some((id) => id !== actor.id) && !isAdmin(actor.role))
    throw fail.forbidden('Insufficient permission to unsubscribe other users');
  for (const id of principals) await loadUser(ctx.trx, ctx.realmId, id);

  const result: UnsubscribeResult = { removed: [], notRemoved: [] };
  const missing: string[] = [];
  const targets = [];
  for (const name of new Set(input.streamNames.map((n) => n.trim()))) {
    const stream = await findStreamByName(ctx.trx, ctx.realmId, name);
    if (!stream || !canAccessStream(actor, stream, await isSubscribed(ctx.trx, actor.id, stream.id)))
      missing.push(name);
    else targets.push(stream);
  }
  if (missing.length > 0) {
    const list = missing.map((n) => `'${n}'`).join(', ');
    throw new ConcordError('STREAM_DOES_NOT_EXIST', `Channel(s) (${list}) do not exist`, {
      stream: missing[0],
    });
  }

  for (const stream of targets) {
    const removedIds: number[] = [];
    for (const userId of principals) {
      const deleted = await ctx.trx
        .deleteFrom('subscriptions')
        .where('user_id', '=', userId)
        .where('stream_id', '=', stream.id)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) > 0) removedIds.push(userId);
    }
    if (removedIds.length === 0) {
      result.notRemoved.push(stream.name);
      continue;
    }
    result.removed.push(stream.name);
    ctx.record({
      kind: 'subscription.removed',
      payload: {
        streamId: stream.id,
        userIds: removedIds,
        stream: streamSnapshot(stream),
        subscriberIds: await activeSubscriberIds(ctx.trx, stream.id),
      },
      cacheKeys: [cacheKey.subscribersOf(stream.id), ...removedIds.map((id) => cacheKey.subscriptionsOf(id))],
      audience: { scope: 'stream', streamId: stream.id, inviteOnly: stream.invite_only === 1 },
    });
  }
  return result;
}
