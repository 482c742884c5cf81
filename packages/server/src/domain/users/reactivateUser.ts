import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { fail } from '../../errors.js';
import type { Actor } from '../roles.js';
import { isAdmin } from '../roles.js';
import { loadUser, subscribedStreams } from './userRecord.js';

/**
 * Reactivates a user. Their subscriptions were kept, so they reappear in the member lists of the
 * live channels they were in; the change names those channels.
 */
export async function reactivateUser(ctx: CommandContext, actor: Actor, userId: number): Promise<void> {
  const user = await loadUser(ctx.trx, ctx.realmId, userId);
  if (!isAdmin(actor.role)) throw fail.forbidden('Must be an organization administrator');
  if (user.is_active) throw fail.badRequest('User is already active');
  await ctx.trx.updateTable('users').set({ is_active: 1 }).where('id', '=', user.id).execute();
  const streams = await subscribedStreams(ctx.trx, user.id);
  ctx.record({
    kind: 'user.reactivated',
    payload: { userId: user.id, streams },
    cacheKeys: [
      cacheKey.user(user.id),
      cacheKey.usersOfRealm(ctx.realmId),
      ...streams.map((s) => cacheKey.subscribersOf(s.id)),
    ],
    audience: { scope: 'realm' },
  });
}
