import { cacheKey } from '../../changelog/change.js';
import type { UserField } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { fail } from '../../errors.js';
import type { UserRow } from '../../store/schema.js';
import type { Actor } from '../roles.js';
import { Role, isAdmin, isOwner, roleValues } from '../roles.js';
import { checkFullName } from '../validation.js';
import { countActiveOwners, loadUser } from './userRecord.js';

export interface UpdateUserInput {
  fullName?: string;
  role?: number;
}

/**
 * Changes a user's full name and/or role. Administrators may change anyone; users may change
 * their own name. Only owners grant or revoke ownership, and the last owner stays one. Appends one
 * `user.updated` per field that actually changed (Zulip sends one event per change).
 */
export async function updateUser(
  ctx: CommandContext,
  actor: Actor,
  userId: number,
  input: UpdateUserInput,
): Promise<UserRow> {
  const user = await loadUser(ctx.trx, ctx.realmId, userId);
  const self = actor.id === user.id;
  if (!isAdmin(actor.role) && !(self && input.role === undefined)) throw fail.forbidden();
  const set: Partial<Pick<UserRow, 'full_name' | 'role'>> = {};

  if (input.fullName !== undefined) {
    const name = checkFullName(input.fullName);
    if (name !== user.full_name) set.full_name = name;
  }
  if (input.role !== undefined && input.role !== user.role) {
    if (!roleValues.includes(input.role))
      throw fail.invalid('role', `${input.role} is not one of ${roleValues.join(', ')}`);
    if ((input.role === Role.OWNER || user.role === Role.OWNER) && !isOwner(actor.role))
      throw fail.forbidden('Must be an organization owner');
    if (user.role === Role.OWNER && user.is_active && (await countActiveOwners(ctx.trx, ctx.realmId)) <= 1)
      throw fail.badRequest('The owner permission cannot be removed from the only organization owner.');
    set.role = input.role;
  }
  if (Object.keys(set).length === 0) return user;

  const updated = await ctx.trx
    .updateTable('users')
    .set(set)
    .where('id', '=', user.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  for (const [field, value] of Object.entries(set) as [UserField, string | number][]) {
    ctx.record({
      kind: 'user.updated',
      payload: { userId: user.id, field, value, previous: user[field as 'full_name' | 'role'] },
      cacheKeys: [cacheKey.user(user.id), cacheKey.usersOfRealm(ctx.realmId)],
      audience: { scope: 'realm' },
    });
  }
  return updated;
}
