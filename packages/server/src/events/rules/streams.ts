import { presentLoggedStream } from '../present.js';
import { canSee } from '../view.js';
import type { Rule, ZulipEvent } from './rule.js';
import { none } from './rule.js';

/** A channel appears (`stream` `create`) to those who may see it; its subscribers follow as they join. */
export const streamCreated: Rule<'stream.created'> = (change, ctx) => {
  const s = change.payload.stream;
  if (!canSee(ctx.view, { id: s.id, inviteOnly: s.invite_only })) return none;
  return { events: [{ type: 'stream', op: 'create', streams: [presentLoggedStream(s, ctx.realmId, 0)] }] };
};

const deleteEvent = (streamId: number): ZulipEvent => ({
  type: 'stream',
  op: 'delete',
  streams: [{ stream_id: streamId }],
  stream_ids: [streamId],
});

/**
 * A property change is `stream` `update` for those who saw the channel before and after. A
 * privacy change that reveals the channel is `stream` `create` plus `peer_add` of its members;
 * one that hides it is `stream` `delete`.
 */
export const streamUpdated: Rule<'stream.updated'> = (change, ctx) => {
  const { streamId, property, value, previous, stream, subscriberIds } = change.payload;
  const before = canSee(ctx.view, {
    id: streamId,
    inviteOnly: property === 'invite_only' ? Boolean(previous) : stream.invite_only,
  });
  const after = canSee(ctx.view, { id: streamId, inviteOnly: stream.invite_only });
  if (!before && !after) return none;
  if (!before && after) {
    const events: ZulipEvent[] = [
      {
        type: 'stream',
        op: 'create',
        streams: [presentLoggedStream(stream, ctx.realmId, subscriberIds.length)],
      },
    ];
    if (subscriberIds.length > 0)
      events.push({ type: 'subscription', op: 'peer_add', stream_ids: [streamId], user_ids: subscriberIds });
    return { events };
  }
  if (before && !after) return { events: [deleteEvent(streamId)] };

  const event: ZulipEvent = {
    type: 'stream',
    op: 'update',
    stream_id: streamId,
    // Zulip names the channel as it was before this change.
    name: property === 'name' ? String(previous) : stream.name,
    property,
    value,
  };
  if (property === 'description')
    event.rendered_description = presentLoggedStream(stream, ctx.realmId, 0).rendered_description;
  if (property === 'invite_only') {
    event.history_public_to_subscribers = stream.history_public_to_subscribers;
    event.is_web_public = false;
  }
  return { events: [event] };
};

/**
 * Archiving: a client with the `archived_channels` capability keeps the channel (and its
 * subscription) and gets `stream` `update` `is_archived: true`; any other client sees it leave
 * every list: its subscribers get `subscription` `remove`, and everyone who saw it `stream` `delete`.
 */
export const streamArchived: Rule<'stream.archived'> = (change, ctx) => {
  const { streamId } = change.payload;
  const ref = { id: streamId, inviteOnly: change.audience.scope === 'stream' && change.audience.inviteOnly };
  if (!canSee(ctx.view, ref)) return none;
  if (ctx.archivedChannels)
    return {
      events: [
        {
          type: 'stream',
          op: 'update',
          stream_id: streamId,
          name: change.payload.name ?? '',
          property: 'is_archived',
          value: true,
        },
      ],
    };
  const events: ZulipEvent[] = [];
  if (ctx.view.subscribed.has(streamId)) {
    ctx.view.subscribed.delete(streamId);
    events.push({ type: 'subscription', op: 'remove', subscriptions: [{ stream_id: streamId, name: '' }] });
  }
  events.push(deleteEvent(streamId));
  return { events };
};
