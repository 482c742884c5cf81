import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { fail } from '../../errors.js';
import type { CheckedAvatar } from '../../images/avatarImage.js';
import type { Actor } from '../roles.js';
import { isAdmin } from '../roles.js';
import { loadUser } from './userRecord.js';

/**
 * Stores a user's uploaded avatar (already checked by `checkAvatar`) and bumps `avatar_version` in
 * the same transaction, appending the `user.updated` change that gives clients the new URL. Users
 * set their own; administrators set anyone's.
 */
export async function setAvatar(
  ctx: CommandContext,
  actor: Actor,
  userId: number,
  avatar: CheckedAvatar,
): Promise<number> {
  const user = await loadUser(ctx.trx, ctx.realmId, userId);
  if (actor.id !== user.id && !isAdmin(actor.role)) throw fail.forbidden();
  await ctx.trx.deleteFrom('avatars').where('user_id', '=', user.id).execute();
  await ctx.trx
    .insertInto('avatars')
    .values({
      user_id: user.id,
      content: avatar.content,
      format: avatar.format,
      sha256: avatar.sha256,
      uploaded_at: ctx.now,
    })
    .execute();
  return bumpAvatarVersion(ctx, user.id, user.avatar_version);
}

/** Moves the user to a new avatar URL and tells clients (shared with clearAvatar). */
export async function bumpAvatarVersion(
  ctx: CommandContext,
  userId: number,
  previous: number,
): Promise<number> {
  const version = previous + 1;
  await ctx.trx.updateTable('users').set({ avatar_version: version }).where('id', '=', userId).execute();
  ctx.record({
    kind: 'user.updated',
    payload: { userId, field: 'avatar_version', value: version, previous },
    cacheKeys: [cacheKey.user(userId), cacheKey.usersOfRealm(ctx.realmId)],
    audience: { scope: 'realm' },
  });
  return version;
}
