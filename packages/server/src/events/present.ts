import type { StreamSnapshot, UserSnapshot } from '../changelog/change.js';
import { presentStream, presentSubscription } from '../http/presenters/stream.js';
import type { PresentContext } from '../http/presenters/user.js';
import { presentUser } from '../http/presenters/user.js';
import { defaultColor } from '../domain/streams/streamRecord.js';
import type { StreamRow, UserRow } from '../store/schema.js';

/** A logged user as the row shape the presenters take. */
export function userRowOf(u: UserSnapshot, realmId: number): UserRow {
  return {
    id: u.id,
    realm_id: realmId,
    delivery_email: u.delivery_email,
    email_key: u.delivery_email?.toLowerCase() ?? null,
    full_name: u.full_name,
    role: u.role,
    is_active: u.is_active ? 1 : 0,
    is_bot: u.is_bot ? 1 : 0,
    password_hash: null,
    api_key: '',
    avatar_version: u.avatar_version,
    timezone: u.timezone,
    date_joined: u.date_joined,
  };
}

/** A logged channel as the row shape the presenters take. */
export function streamRowOf(s: StreamSnapshot, realmId: number): StreamRow {
  return {
    id: s.id,
    realm_id: realmId,
    name: s.name,
    name_key: s.name.toLowerCase(),
    description: s.description,
    invite_only: s.invite_only ? 1 : 0,
    history_public_to_subscribers: s.history_public_to_subscribers ? 1 : 0,
    is_archived: s.is_archived ? 1 : 0,
    creator_id: s.creator_id,
    date_created: s.date_created,
  };
}

/** Zulip's `User` for a logged user. */
export const presentLoggedUser = (ctx: PresentContext, u: UserSnapshot, realmId: number) =>
  presentUser(ctx, userRowOf(u, realmId));

/** Zulip's `BasicChannel` for a logged channel. */
export const presentLoggedStream = (s: StreamSnapshot, realmId: number, subscriberCount: number) =>
  presentStream(streamRowOf(s, realmId), subscriberCount);

/** Zulip's `Subscription` for a channel a user was just subscribed to (defaults for personal settings). */
export function presentNewSubscription(
  s: StreamSnapshot,
  realmId: number,
  userId: number,
  subscribers: number[] | undefined,
  count: number,
) {
  return presentSubscription(
    {
      id: 0,
      realm_id: realmId,
      user_id: userId,
      stream_id: s.id,
      color: defaultColor(s.id),
      is_muted: 0,
      pin_to_top: 0,
      date_created: 0,
    },
    streamRowOf(s, realmId),
    subscribers,
    count,
  );
}
