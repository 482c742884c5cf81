import type { CommandContext } from '../../changelog/log.js';
import { fail } from '../../errors.js';
import type { Actor } from '../roles.js';
import { isAdmin } from '../roles.js';
import { bumpAvatarVersion } from './setAvatar.js';
import { loadUser } from './userRecord.js';

/**
 * Returns a user to the generated default avatar. The version still moves on, so the old
 * (uploaded) avatar's immutable URL is never reused for the default one.
 */
export async function clearAvatar(ctx: CommandContext, actor: Actor, userId: number): Promise<number> {
  const user = await loadUser(ctx.trx, ctx.realmId, userId);
  if (actor.id !== user.id && !isAdmin(actor.role)) throw fail.forbidden();
  const removed = await ctx.trx.deleteFrom('avatars').where('user_id', '=', user.id).executeTakeFirst();
  if (Number(removed.numDeletedRows) === 0) return user.avatar_version;
  return bumpAvatarVersion(ctx, user.id, user.avatar_version);
}
