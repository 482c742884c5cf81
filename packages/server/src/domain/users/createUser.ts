import { generateApiKey } from '../../auth/apiKey.js';
import { hashPassword } from '../../auth/password.js';
import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { ConcordError, fail } from '../../errors.js';
import type { UserRow } from '../../store/schema.js';
import type { Actor } from '../roles.js';
import { Role, isAdmin, isOwner, roleValues } from '../roles.js';
import { checkEmail, checkFullName } from '../validation.js';
import { userSnapshot } from './userRecord.js';

export interface CreateUserInput {
  /** Null for imported users and bots without an address; they get a placeholder API e-mail. */
  email: string | null;
  fullName: string;
  role?: number;
  password?: string | null;
  isBot?: boolean;
  timezone?: string;
}

/**
 * Creates a user. `actor` null means the operator (CLI, first start). Only administrators create
 * users, only owners create owners. Appends `user.created`.
 */
export async function createUser(
  ctx: CommandContext,
  actor: Actor | null,
  input: CreateUserInput,
  opts: { passwordHashCost: number },
): Promise<UserRow> {
  const role = input.role ?? Role.MEMBER;
  if (!roleValues.includes(role))
    throw fail.invalid('role', `${role} is not one of ${roleValues.join(', ')}`);
  if (actor && !isAdmin(actor.role)) throw fail.forbidden('Must be an organization administrator');
  if (actor && role === Role.OWNER && !isOwner(actor.role))
    throw fail.forbidden('Must be an organization owner');
  const fullName = checkFullName(input.fullName);
  const email = input.email === null ? null : checkEmail(input.email);
  if (input.password != null && input.password.length > 1024)
    throw fail.invalid('password', 'longer than 1024 characters');

  if (email) {
    const clash = await ctx.trx
      .selectFrom('users')
      .select('id')
      .where('realm_id', '=', ctx.realmId)
      .where('email_key', '=', email.toLowerCase())
      .executeTakeFirst();
    if (clash) throw new ConcordError('BAD_REQUEST', `Email '${email}' already in use`);
  }
  const passwordHash = input.password ? await hashPassword(input.password, opts.passwordHashCost) : null;
  const user = await ctx.trx
    .insertInto('users')
    .values({
      realm_id: ctx.realmId,
      delivery_email: email,
      email_key: email?.toLowerCase() ?? null,
      full_name: fullName,
      role,
      is_active: 1,
      is_bot: input.isBot ? 1 : 0,
      password_hash: passwordHash,
      api_key: generateApiKey(),
      avatar_version: 1,
      timezone: input.timezone ?? '',
      date_joined: ctx.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  ctx.record({
    kind: 'user.created',
    payload: { user: userSnapshot(user) },
    cacheKeys: [
      cacheKey.user(user.id),
      cacheKey.usersOfRealm(ctx.realmId),
      // A look-up of this address before it existed may be cached as "no such user".
      ...(user.email_key ? [cacheKey.userByEmail(ctx.realmId, user.email_key)] : []),
    ],
    audience: { scope: 'realm' },
  });
  return user;
}
