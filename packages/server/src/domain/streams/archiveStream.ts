import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { fail } from '../../errors.js';
import type { Actor } from '../roles.js';
import { isAdmin } from '../roles.js';
import { activeSubscriberIds, loadAccessibleStream } from './streamRecord.js';

/**
 * Archives a channel: it leaves every channel list and frees its name. Subscriptions are kept so
 * that the record of who was in it survives. Administrators only.
 */
export async function archiveStream(ctx: CommandContext, actor: Actor, streamId: number): Promise<void> {
  const stream = await loadAccessibleStream(ctx.trx, actor, streamId);
  if (!isAdmin(actor.role)) throw fail.forbidden('Must be an organization administrator');
  if (stream.is_archived) throw fail.badRequest('Channel is already archived');
  await ctx.trx.updateTable('streams').set({ is_archived: 1 }).where('id', '=', stream.id).execute();
  const subscriberIds = await activeSubscriberIds(ctx.trx, stream.id);
  ctx.record({
    kind: 'stream.archived',
    payload: { streamId: stream.id, subscriberIds, name: stream.name },
    cacheKeys: [
      cacheKey.stream(stream.id),
      cacheKey.streamsOfRealm(ctx.realmId),
      cacheKey.subscribersOf(stream.id),
      ...subscriberIds.map((id) => cacheKey.subscriptionsOf(id)),
    ],
    audience: { scope: 'stream', streamId: stream.id, inviteOnly: stream.invite_only === 1 },
  });
}
