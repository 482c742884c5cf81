import { apiEmail } from '../../auth/authenticate.js';
import { Role } from '../../domain/roles.js';
import type { UserRow } from '../../store/schema.js';

/** What presenting needs to know about the server. */
export interface PresentContext {
  externalUrl: string;
  /** Host part of the placeholder e-mails. */
  host: string;
}

/** The versioned URL of a user's avatar: a new avatar is a new URL, so no cache can serve an old one. */
export const avatarUrl = (ctx: PresentContext, user: Pick<UserRow, 'id' | 'avatar_version'>): string =>
  `${ctx.externalUrl}/avatar/${user.id}/v${user.avatar_version}`;

/** A user as Zulip's `User` object. */
export function presentUser(ctx: PresentContext, u: UserRow) {
  return {
    user_id: u.id,
    delivery_email: u.delivery_email,
    email: apiEmail(u, ctx.host),
    full_name: u.full_name,
    date_joined: new Date(Number(u.date_joined)).toISOString(),
    is_active: u.is_active === 1,
    is_owner: u.role === Role.OWNER,
    is_admin: u.role === Role.OWNER || u.role === Role.ADMINISTRATOR,
    is_guest: u.role === Role.GUEST,
    is_bot: u.is_bot === 1,
    bot_type: u.is_bot === 1 ? 1 : null,
    bot_owner_id: null,
    role: u.role,
    timezone: u.timezone,
    avatar_url: avatarUrl(ctx, u),
    avatar_version: u.avatar_version,
    profile_data: {},
  };
}

// Cached rows are frozen and shared by every request until a change replaces them, so the JSON of
// a presented row can be kept beside it: a hot GET /users/{id} serializes nothing.
interface Presented {
  externalUrl: string;
  json: string;
  /** The whole `GET /users/{id}` answer, encoded once. */
  response?: Buffer;
}
const presented = new WeakMap<UserRow, Presented>();

function presentedOf(ctx: PresentContext, u: UserRow): Presented {
  const hit = presented.get(u);
  if (hit && hit.externalUrl === ctx.externalUrl) return hit;
  const entry: Presented = { externalUrl: ctx.externalUrl, json: JSON.stringify(presentUser(ctx, u)) };
  if (Object.isFrozen(u)) presented.set(u, entry);
  return entry;
}

/** The body of `GET /users/{id}` for `u` (Zulip's success shape), encoded once per row object. */
export function presentUserResponse(ctx: PresentContext, u: UserRow): Buffer {
  const entry = presentedOf(ctx, u);
  return (entry.response ??= Buffer.from(`{"result":"success","msg":"","user":${entry.json}}`));
}

/**
 * `GET /users/me`: one's own profile in the shape Zulip documents for it — no bot fields, the
 * real address always (the placeholder when there is none), and `max_message_id` (-1: Concord
 * has no messages).
 */
export function presentOwnUser(ctx: PresentContext, u: UserRow) {
  const { bot_type: _type, bot_owner_id: _owner, ...user } = presentUser(ctx, u);
  return { ...user, delivery_email: u.delivery_email ?? user.email, max_message_id: -1 };
}
