import type { Kysely } from 'kysely';
import type { StreamSnapshot } from '../../changelog/change.js';
import { fail } from '../../errors.js';
import type { Database, StreamRow } from '../../store/schema.js';
import type { Actor } from '../roles.js';
import { isAdmin, isGuest } from '../roles.js';

/** The channel with this id in this realm (archived included), or STREAM_DOES_NOT_EXIST. */
export async function loadStream(
  db: Kysely<Database>,
  realmId: number,
  streamId: number,
): Promise<StreamRow> {
  const stream = await db
    .selectFrom('streams')
    .selectAll()
    .where('realm_id', '=', realmId)
    .where('id', '=', streamId)
    .executeTakeFirst();
  if (!stream) throw fail.noSuchStreamId(streamId);
  return stream;
}

/** The live channel with this name (case-insensitive), if any. */
export async function findStreamByName(
  db: Kysely<Database>,
  realmId: number,
  name: string,
): Promise<StreamRow | undefined> {
  // No channel name has a NUL (checkStreamName), and PostgreSQL refuses to compare text holding one.
  if (name.includes('\u0000')) return undefined;
  return db
    .selectFrom('streams')
    .selectAll()
    .where('realm_id', '=', realmId)
    .where('name_key', '=', name.trim().toLowerCase())
    .where('is_archived', '=', 0)
    .executeTakeFirst();
}

/** Whether `userId` is subscribed to `streamId`. */
export async function isSubscribed(db: Kysely<Database>, userId: number, streamId: number): Promise<boolean> {
  const row = await db
    .selectFrom('subscriptions')
    .select('id')
    .where('user_id', '=', userId)
    .where('stream_id', '=', streamId)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Whether `actor` may know that the channel exists and see its subscribers: private channels
 * only to their subscribers and administrators; guests only the channels they are in.
 */
export function canAccessStream(
  actor: Actor,
  stream: Pick<StreamRow, 'invite_only'>,
  subscribed: boolean,
): boolean {
  if (subscribed) return true;
  if (isGuest(actor.role)) return false;
  return stream.invite_only === 0 || isAdmin(actor.role);
}

/** Loads a channel the actor may access; an inaccessible one is reported as missing, not forbidden. */
export async function loadAccessibleStream(
  db: Kysely<Database>,
  actor: Actor,
  streamId: number,
): Promise<StreamRow> {
  const stream = await loadStream(db, actor.realm_id, streamId);
  if (!canAccessStream(actor, stream, await isSubscribed(db, actor.id, stream.id)))
    throw fail.noSuchStreamId(streamId);
  return stream;
}

/** The channel's state as the change log records it. */
export function streamSnapshot(s: StreamRow): StreamSnapshot {
  return {
    id: s.id,
    name: s.name,
    description: s.description,
    invite_only: s.invite_only === 1,
    history_public_to_subscribers: s.history_public_to_subscribers === 1,
    is_archived: s.is_archived === 1,
    creator_id: s.creator_id,
    date_created: Number(s.date_created),
  };
}

/** Ids of the active users subscribed to a channel. */
export async function activeSubscriberIds(db: Kysely<Database>, streamId: number): Promise<number[]> {
  const rows = await db
    .selectFrom('subscriptions')
    .innerJoin('users', 'users.id', 'subscriptions.user_id')
    .select('users.id')
    .where('subscriptions.stream_id', '=', streamId)
    .where('users.is_active', '=', 1)
    .orderBy('users.id')
    .execute();
  return rows.map((r) => r.id);
}

// Zulip's default subscription colours.
const palette = [
  '#76ce90',
  '#fae589',
  '#a6c7e5',
  '#e79ab5',
  '#bfd56f',
  '#f4ae55',
  '#b0a5fd',
  '#addfe5',
  '#f5ce6e',
  '#c2726a',
];

/** The colour a new subscription gets: stable per channel, so everyone sees it alike by default. */
export const defaultColor = (streamId: number): string => palette[streamId % palette.length]!;
