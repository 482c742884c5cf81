import { presentLoggedStream, presentNewSubscription } from '../present.js';
import { canSee } from '../view.js';
import type { Rule, ZulipEvent } from './rule.js';
import { none } from './rule.js';

/**
 * New subscribers get `subscription` `add` with the channel and its members (preceded by
 * `stream` `create` when the channel was hidden from them); everyone else who may see the
 * channel's members gets `peer_add`.
 */
export const subscriptionAdded: Rule<'subscription.added'> = (change, ctx) => {
  const { streamId, userIds, stream, subscriberIds } = change.payload;
  const ref = { id: streamId, inviteOnly: stream.invite_only };
  const visibleBefore = canSee(ctx.view, ref);
  if (userIds.includes(ctx.view.userId)) {
    const events: ZulipEvent[] = [];
    if (!visibleBefore)
      events.push({
        type: 'stream',
        op: 'create',
        streams: [presentLoggedStream(stream, ctx.realmId, subscriberIds.length)],
      });
    ctx.view.subscribed.add(streamId);
    const subscribers = ctx.includeSubscribers ? subscriberIds : undefined;
    events.push({
      type: 'subscription',
      op: 'add',
      subscriptions: [
        presentNewSubscription(stream, ctx.realmId, ctx.view.userId, subscribers, subscriberIds.length),
      ],
    });
    // Other new members arrive in the same change; this recipient learns of them through the
    // subscriber list of its own subscription.
    return { events };
  }
  if (!visibleBefore) return none;
  return { events: [{ type: 'subscription', op: 'peer_add', stream_ids: [streamId], user_ids: userIds }] };
};

/**
 * Removed subscribers get `subscription` `remove` (then `stream` `delete` if the channel is now
 * hidden from them); everyone else who may see the members gets `peer_remove`.
 */
export const subscriptionRemoved: Rule<'subscription.removed'> = (change, ctx) => {
  const { streamId, userIds, stream } = change.payload;
  const ref = { id: streamId, inviteOnly: stream.invite_only };
  if (userIds.includes(ctx.view.userId)) {
    ctx.view.subscribed.delete(streamId);
    const events: ZulipEvent[] = [
      { type: 'subscription', op: 'remove', subscriptions: [{ stream_id: streamId, name: stream.name }] },
    ];
    if (!canSee(ctx.view, ref)) {
      events.push({
        type: 'stream',
        op: 'delete',
        streams: [{ stream_id: streamId }],
        stream_ids: [streamId],
      });
      return { events };
    }
    const others = userIds.filter((id) => id !== ctx.view.userId);
    if (others.length > 0)
      events.push({ type: 'subscription', op: 'peer_remove', stream_ids: [streamId], user_ids: others });
    return { events };
  }
  if (!canSee(ctx.view, ref)) return none;
  return { events: [{ type: 'subscription', op: 'peer_remove', stream_ids: [streamId], user_ids: userIds }] };
};
