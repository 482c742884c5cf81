import { cacheKey } from '../../changelog/change.js';
import type { StreamProperty } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { ConcordError, fail } from '../../errors.js';
import type { StreamRow } from '../../store/schema.js';
import type { Actor } from '../roles.js';
import { isAdmin } from '../roles.js';
import { checkStreamDescription, checkStreamName } from '../validation.js';
import {
  activeSubscriberIds,
  findStreamByName,
  loadAccessibleStream,
  streamSnapshot,
} from './streamRecord.js';

export interface UpdateStreamInput {
  newName?: string;
  description?: string;
  isPrivate?: boolean;
  historyPublicToSubscribers?: boolean;
}

/**
 * Renames a channel, changes its description or its privacy. Administrators only. Appends one
 * `stream.updated` per property that changed. The audience of a privacy change is the wider of
 * the two settings, so that everyone who could see the channel learns that it changed.
 */
export async function updateStream(
  ctx: CommandContext,
  actor: Actor,
  streamId: number,
  input: UpdateStreamInput,
): Promise<StreamRow> {
  const stream = await loadAccessibleStream(ctx.trx, actor, streamId);
  if (stream.is_archived) throw fail.badRequest('Channel is archived');
  if (!isAdmin(actor.role)) throw fail.forbidden('Must be an organization administrator');
  const set: Partial<StreamRow> = {};
  const changes: [StreamProperty, string | boolean, string | boolean][] = [];

  if (input.newName !== undefined) {
    const name = checkStreamName(input.newName, 'new_name');
    if (name !== stream.name) {
      const other = await findStreamByName(ctx.trx, ctx.realmId, name);
      if (other && other.id !== stream.id)
        throw new ConcordError('BAD_REQUEST', `Channel name '${name}' is already taken.`);
      set.name = name;
      set.name_key = name.toLowerCase();
      changes.push(['name', name, stream.name]);
    }
  }
  if (input.description !== undefined) {
    const description = checkStreamDescription(input.description);
    if (description !== stream.description) {
      set.description = description;
      changes.push(['description', description, stream.description]);
    }
  }
  if (input.isPrivate !== undefined && input.isPrivate !== (stream.invite_only === 1)) {
    set.invite_only = input.isPrivate ? 1 : 0;
    changes.push(['invite_only', input.isPrivate, !input.isPrivate]);
  }
  if (
    input.historyPublicToSubscribers !== undefined &&
    input.historyPublicToSubscribers !== (stream.history_public_to_subscribers === 1)
  ) {
    set.history_public_to_subscribers = input.historyPublicToSubscribers ? 1 : 0;
    changes.push([
      'history_public_to_subscribers',
      input.historyPublicToSubscribers,
      !input.historyPublicToSubscribers,
    ]);
  }
  if (changes.length === 0) return stream;

  const updated = await ctx.trx
    .updateTable('streams')
    .set(set)
    .where('id', '=', stream.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  const wasPrivate = stream.invite_only === 1;
  const snapshot = streamSnapshot(updated);
  const subscriberIds = await activeSubscriberIds(ctx.trx, stream.id);
  for (const [property, value, previous] of changes) {
    ctx.record({
      kind: 'stream.updated',
      payload: { streamId: stream.id, property, value, previous, stream: snapshot, subscriberIds },
      cacheKeys: [cacheKey.stream(stream.id), cacheKey.streamsOfRealm(ctx.realmId)],
      audience: { scope: 'stream', streamId: stream.id, inviteOnly: wasPrivate && updated.invite_only === 1 },
    });
  }
  return updated;
}
