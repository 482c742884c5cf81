import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { fail } from '../../errors.js';
import type { Actor } from '../roles.js';
import { Role, isAdmin, isOwner } from '../roles.js';
import { countActiveOwners, loadUser, subscribedStreams } from './userRecord.js';

/**
 * Deactivates a user: they can no longer log in and their sessions are deleted in the same
 * transaction. Their API key is kept, as Zulip keeps it: authentication reads `is_active` from the
 * same row on every request, so after the commit their key gets USER_DEACTIVATED (Zulip's answer,
 * which clients act on) rather than INVALID_API_KEY, and a reactivated bot's configured key works
 * again. The change names every live channel they were in, whose member lists lose them (incident 3).
 */
export async function deactivateUser(ctx: CommandContext, actor: Actor, userId: number): Promise<void> {
  const user = await loadUser(ctx.trx, ctx.realmId, userId);
  if (!isAdmin(actor.role)) throw fail.forbidden('Must be an organization administrator');
  if (user.role === Role.OWNER && !isOwner(actor.role)) throw fail.forbidden('Must be an organization owner');
  if (!user.is_active) throw fail.badRequest('User is already deactivated');
  if (user.role === Role.OWNER && (await countActiveOwners(ctx.trx, ctx.realmId)) <= 1)
    throw fail.badRequest('Cannot deactivate the only organization owner');

  await ctx.trx.updateTable('users').set({ is_active: 0 }).where('id', '=', user.id).execute();
  await ctx.trx.deleteFrom('sessions').where('user_id', '=', user.id).execute();
  const streams = await subscribedStreams(ctx.trx, user.id);
  ctx.record({
    kind: 'user.deactivated',
    payload: { userId: user.id, streams },
    cacheKeys: [
      cacheKey.user(user.id),
      cacheKey.usersOfRealm(ctx.realmId),
      ...streams.map((s) => cacheKey.subscribersOf(s.id)),
    ],
    audience: { scope: 'realm' },
  });
}
