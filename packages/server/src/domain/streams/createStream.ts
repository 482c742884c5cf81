import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { ConcordError, fail } from '../../errors.js';
import type { StreamRow } from '../../store/schema.js';
import type { Actor } from '../roles.js';
import { isGuest } from '../roles.js';
import { checkStreamDescription, checkStreamName } from '../validation.js';
import { findStreamByName, streamSnapshot } from './streamRecord.js';

export interface CreateStreamInput {
  name: string;
  description?: string;
  inviteOnly?: boolean;
  historyPublicToSubscribers?: boolean;
}

/**
 * Creates a channel (Zulip creates channels by subscribing to a new name). Members and above may
 * create channels, guests may not. Appends `stream.created`; subscribing is a separate change.
 */
export async function createStream(
  ctx: CommandContext,
  actor: Actor,
  input: CreateStreamInput,
): Promise<StreamRow> {
  if (isGuest(actor.role)) throw fail.forbidden('Insufficient permission to create channels');
  const name = checkStreamName(input.name);
  const description = checkStreamDescription(input.description ?? '');
  if (await findStreamByName(ctx.trx, ctx.realmId, name))
    throw new ConcordError('BAD_REQUEST', `Channel name '${name}' is already taken.`);
  const inviteOnly = input.inviteOnly ?? false;
  const stream = await ctx.trx
    .insertInto('streams')
    .values({
      realm_id: ctx.realmId,
      name,
      name_key: name.toLowerCase(),
      description,
      invite_only: inviteOnly ? 1 : 0,
      // Zulip: private channels default to protected history unless asked otherwise.
      history_public_to_subscribers: (input.historyPublicToSubscribers ?? !inviteOnly) ? 1 : 0,
      is_archived: 0,
      creator_id: actor.id,
      date_created: ctx.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  ctx.record({
    kind: 'stream.created',
    payload: { stream: streamSnapshot(stream) },
    cacheKeys: [cacheKey.stream(stream.id), cacheKey.streamsOfRealm(ctx.realmId)],
    audience: { scope: 'stream', streamId: stream.id, inviteOnly },
  });
  return stream;
}
