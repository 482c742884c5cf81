import type { CommandContext } from '../../changelog/log.js';
import { ConcordError, fail } from '../../errors.js';
import type { StreamRow } from '../../store/schema.js';
import type { Actor } from '../roles.js';
import { isGuest } from '../roles.js';
import { createStream } from '../streams/createStream.js';
import { canAccessStream, findStreamByName, isSubscribed } from '../streams/streamRecord.js';
import { loadUser } from '../users/userRecord.js';
import { checkStreamDescription, checkStreamName } from '../validation.js';
import { addSubscribers, subscribedAmong } from './addSubscribers.js';

export interface SubscribeInput {
  streams: { name: string; description?: string }[];
  /** User ids to subscribe; the actor when empty. */
  principals: number[];
  /** For channels this call creates. */
  inviteOnly?: boolean;
  historyPublicToSubscribers?: boolean;
  /** Fail the whole call (true) or report inaccessible channels in `unauthorized` (false). */
  authorizationErrorsFatal?: boolean;
}

export interface SubscribeResult {
  subscribed: Map<number, string[]>;
  alreadySubscribed: Map<number, string[]>;
  unauthorized: string[];
  created: StreamRow[];
}

/**
 * Subscribes users to channels by name, creating the channels that do not exist. Members may
 * subscribe others (Zulip's default); guests may only be subscribed. Private channels admit only
 * what their subscribers and administrators add. Appends `stream.created` for new channels and
 * one `subscription.added` per channel that gained members.
 */
export async function subscribe(
  ctx: CommandContext,
  actor: Actor,
  input: SubscribeInput,
): Promise<SubscribeResult> {
  if (input.streams.length === 0) throw fail.badRequest('Nothing to do. Specify at least one channel.');
  const principals = input.principals.length > 0 ? [...new Set(input.principals)] : [actor.id];
  const subscribingOthers = principals.some((id) => id !== actor.id);
  if (subscribingOthers && isGuest(actor.role))
    throw fail.forbidden('Insufficient permission to subscribe other users');
  for (const id of principals) {
    const user = await loadUser(ctx.trx, ctx.realmId, id);
    if (!user.is_active) throw new ConcordError('BAD_REQUEST', `User ${id} is deactivated`);
  }

  const result: SubscribeResult = {
    subscribed: new Map(),
    alreadySubscribed: new Map(),
    unauthorized: [],
    created: [],
  };
  const seen = new Set<string>();
  for (const [i, spec] of input.streams.entries()) {
    const key = spec.name.trim().toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    let stream = await findStreamByName(ctx.trx, ctx.realmId, spec.name);
    if (!stream) {
      // Checked here too so that the error names the entry of the `subscriptions` parameter.
      checkStreamName(spec.name, `subscriptions[${i}][name]`);
      checkStreamDescription(spec.description ?? '', `subscriptions[${i}][description]`);
      stream = await createStream(ctx, actor, {
        name: spec.name,
        description: spec.description,
        inviteOnly: input.inviteOnly,
        historyPublicToSubscribers: input.historyPublicToSubscribers,
      });
      result.created.push(stream);
    } else if (!canAccessStream(actor, stream, await isSubscribed(ctx.trx, actor.id, stream.id))) {
      if (input.authorizationErrorsFatal !== false)
        throw fail.badRequest(`Unable to access channel (${stream.name}).`);
      result.unauthorized.push(stream.name);
      continue;
    }

    const already = await subscribedAmong(ctx.trx, stream.id, principals);
    const added: number[] = [];
    for (const userId of principals) {
      const bucket = already.has(userId) ? result.alreadySubscribed : result.subscribed;
      bucket.set(userId, [...(bucket.get(userId) ?? []), stream.name]);
      if (bucket === result.subscribed) added.push(userId);
    }
    await addSubscribers(ctx, stream, added);
  }
  return result;
}
