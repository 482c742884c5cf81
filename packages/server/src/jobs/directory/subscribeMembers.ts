import type { CommandContext } from '../../changelog/log.js';
import { ConcordError } from '../../errors.js';
import type { StreamRow } from '../../store/schema.js';
import { addSubscribers, subscribedAmong } from '../../domain/subscriptions/addSubscribers.js';

/**
 * Subscribes many users to one channel for a directory sync: what domain/subscriptions/subscribe.ts
 * does for the same call, with the users' activity checked in one statement instead of a load
 * per user (a first sync of 10,000 users makes about 13,000 subscriptions). The actor is the
 * realm owner, who may add anyone to any channel, so subscribe()'s permission checks have nothing
 * to refuse. Returns the users it subscribed (those not subscribed already).
 */
export async function subscribeMembers(
  ctx: CommandContext,
  stream: StreamRow,
  userIds: number[],
): Promise<number[]> {
  const wanted = [...new Set(userIds)];
  if (wanted.length === 0) return [];
  const active = await ctx.trx
    .selectFrom('users')
    .select('id')
    .where('realm_id', '=', ctx.realmId)
    .where('id', 'in', wanted)
    .where('is_active', '=', 1)
    .execute();
  if (active.length !== wanted.length) {
    const ok = new Set(active.map((u) => u.id));
    const id = wanted.find((u) => !ok.has(u));
    throw new ConcordError('BAD_REQUEST', `User ${id} is deactivated`);
  }
  const already = await subscribedAmong(ctx.trx, stream.id, wanted);
  const added = wanted.filter((id) => !already.has(id));
  await addSubscribers(ctx, stream, added);
  return added;
}
