import { generateApiKey } from '../../auth/apiKey.js';
import { hashPassword } from '../../auth/password.js';
import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';
import { ConcordError, fail } from '../../errors.js';
import type { NewUser, UserRow } from '../../store/schema.js';
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
    if ((await emailInUse(ctx, [email.toLowerCase()])) !== undefined)
      throw new ConcordError('BAD_REQUEST', `Email '${email}' already in use`);
  }
  const passwordHash = input.password ? await hashPassword(input.password, opts.passwordHashCost) : null;
  const user = await ctx.trx
    .insertInto('users')
    .values(
      newUserRow(ctx, {
        email,
        fullName,
        role,
        isBot: input.isBot ?? false,
        passwordHash,
        apiKey: generateApiKey(),
        timezone: input.timezone ?? '',
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
  recordUserCreated(ctx, user);
  return user;
}

/** The address (as stored) of a user of the realm whose lower-cased address is one of `emailKeys`. */
export async function emailInUse(ctx: CommandContext, emailKeys: string[]): Promise<string | undefined> {
  if (emailKeys.length === 0) return undefined;
  const clash = await ctx.trx
    .selectFrom('users')
    .select('delivery_email')
    .where('realm_id', '=', ctx.realmId)
    .where('email_key', 'in', emailKeys)
    .executeTakeFirst();
  return clash ? (clash.delivery_email ?? '') : undefined;
}

/** The row of a new, active user with a fresh avatar; the fields were validated by the caller. */
export function newUserRow(
  ctx: CommandContext,
  u: {
    email: string | null;
    fullName: string;
    role: number;
    isBot: boolean;
    passwordHash: string | null;
    apiKey: string;
    timezone: string;
  },
): NewUser {
  return {
    realm_id: ctx.realmId,
    delivery_email: u.email,
    email_key: u.email?.toLowerCase() ?? null,
    full_name: u.fullName,
    role: u.role,
    is_active: 1,
    is_bot: u.isBot ? 1 : 0,
    password_hash: u.passwordHash,
    api_key: u.apiKey,
    avatar_version: 1,
    timezone: u.timezone,
    date_joined: ctx.now,
  };
}

/** Appends the `user.created` change of a row just inserted. */
export function recordUserCreated(ctx: CommandContext, user: UserRow): void {
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
}
