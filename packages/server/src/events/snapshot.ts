import type { Kysely } from 'kysely';
import { streamsOfRealm } from '../domain/streams/streamQueries.js';
import { canAccessStream } from '../domain/streams/streamRecord.js';
import { usersOfRealm } from '../domain/users/userRecord.js';
import type { PresentContext } from '../http/presenters/user.js';
import { presentUser } from '../http/presenters/user.js';
import { presentStream, presentSubscription } from '../http/presenters/stream.js';
import { fail } from '../errors.js';
import type { Database, StreamRow, SubscriptionRow, UserRow } from '../store/schema.js';
import type { Store } from '../store/store.js';
import type { RecipientView } from './view.js';

/** The event types Concord delivers, and so the state it can return at register. */
export const supportedEventTypes = ['realm_user', 'subscription', 'stream', 'heartbeat'] as const;

/** A register's initial state, read at one log position. */
export interface Snapshot {
  /** The log position: the queue holds exactly the changes after it. */
  seq: number;
  /** The user's view at that position, from which the queue derives its events. */
  view: RecipientView;
  /** The requested parts of Zulip's register response. */
  state: Record<string, unknown>;
}

/**
 * The rows a register's state is built from, all as of log position `seq`: from one database
 * snapshot ({@link readSnapshotRows}), or from the node's cache at its cursor
 * (CachedReads.registerRows).
 */
export interface SnapshotRows {
  seq: number;
  me: UserRow | undefined;
  /** Every subscription of `me`, archived channels' included. */
  mySubs: readonly SubscriptionRow[];
  /** Every channel of the realm, archived ones included, by id. */
  streams: readonly StreamRow[];
  /** Every user of the realm by id; only when `realm_user` is fetched. */
  users: readonly UserRow[] | null;
  /** Active subscribers per channel, by user id; only when `stream` or `subscription` is fetched. */
  members: ReadonlyMap<number, readonly number[]> | null;
}

/** What a register fetches, and so which rows it needs. */
export interface SnapshotOptions {
  fetchEventTypes: readonly string[];
  includeSubscribers: boolean;
  archivedChannels?: boolean;
}

export const needsUsers = (opts: SnapshotOptions) => opts.fetchEventTypes.includes('realm_user');
export const needsMembers = (opts: SnapshotOptions) =>
  opts.fetchEventTypes.includes('stream') || opts.fetchEventTypes.includes('subscription');

/**
 * Reads the rows of a user's register, and the log head, in one database snapshot, so that nothing
 * is missed or counted twice between the state and the queue that follows it.
 */
export function readSnapshotRows(
  store: Store,
  realmId: number,
  userId: number,
  opts: SnapshotOptions,
): Promise<SnapshotRows> {
  return store.readSnapshot(async (db) => {
    const head = await db
      .selectFrom('changelog_head')
      .select('seq')
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    const me = await db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
    const mySubs = await db.selectFrom('subscriptions').selectAll().where('user_id', '=', userId).execute();
    const streams = await streamsOfRealm(db, realmId);
    const users = needsUsers(opts) ? await usersOfRealm(db, realmId) : null;
    const members = needsMembers(opts) ? await activeSubscribers(db, realmId) : null;
    return { seq: head.seq, me, mySubs, streams, users, members };
  });
}

/** A user's register state from rows read at one log position. */
export function buildSnapshot(
  rows: SnapshotRows,
  userId: number,
  present: PresentContext,
  opts: SnapshotOptions,
): Snapshot {
  const { me, members } = rows;
  if (!me || !me.is_active) throw fail.badRequest('Account is deactivated');
  // Clients with `archived_channels` keep archived channels and their subscriptions.
  const streams = opts.archivedChannels ? rows.streams : rows.streams.filter((s) => !s.is_archived);
  const listed = new Set(streams.map((s) => s.id));
  const mySubs = rows.mySubs.filter((s) => listed.has(s.stream_id));
  const view: RecipientView = {
    userId,
    role: me.role,
    subscribed: new Set(mySubs.map((s) => s.stream_id)),
  };
  const state: Record<string, unknown> = {};
  const wants = (t: string) => opts.fetchEventTypes.includes(t);

  if (wants('realm_user') && rows.users) {
    const shown = (u: UserRow) => {
      const { is_active: _omit, ...person } = presentUser(present, u);
      return person;
    };
    state.realm_users = rows.users.filter((u) => u.is_active).map(shown);
    state.realm_non_active_users = rows.users.filter((u) => !u.is_active).map(shown);
  }

  if ((wants('stream') || wants('subscription')) && members) {
    const visible = streams.filter((s) => canAccessStream(me, s, view.subscribed.has(s.id)));
    const count = (id: number) => members.get(id)?.length ?? 0;
    const subscribers = (id: number) => [...(members.get(id) ?? [])];
    if (wants('stream')) state.streams = visible.map((s) => presentStream(s, count(s.id)));
    if (wants('subscription')) {
      const byStream = new Map(mySubs.map((s) => [s.stream_id, s]));
      state.subscriptions = visible
        .filter((s) => byStream.has(s.id))
        .map((s) =>
          presentSubscription(
            byStream.get(s.id)!,
            s,
            opts.includeSubscribers ? subscribers(s.id) : undefined,
            count(s.id),
          ),
        );
      state.unsubscribed = [];
      state.never_subscribed = visible
        .filter((s) => !byStream.has(s.id))
        .map((s) => ({
          ...presentStream(s, count(s.id)),
          ...(opts.includeSubscribers ? { subscribers: subscribers(s.id) } : {}),
        }));
    }
  }
  return { seq: rows.seq, view, state };
}

/** Reads the state a user may see at one log position, from the database. */
export async function takeSnapshot(
  store: Store,
  realmId: number,
  userId: number,
  present: PresentContext,
  opts: SnapshotOptions,
): Promise<Snapshot> {
  return buildSnapshot(await readSnapshotRows(store, realmId, userId, opts), userId, present, opts);
}

async function activeSubscribers(db: Kysely<Database>, realmId: number): Promise<Map<number, number[]>> {
  const rows = await db
    .selectFrom('subscriptions')
    .innerJoin('users', 'users.id', 'subscriptions.user_id')
    .select(['subscriptions.stream_id', 'subscriptions.user_id'])
    .where('subscriptions.realm_id', '=', realmId)
    .where('users.is_active', '=', 1)
    .orderBy('subscriptions.user_id')
    .execute();
  const out = new Map<number, number[]>();
  for (const r of rows) {
    let list = out.get(r.stream_id);
    if (!list) out.set(r.stream_id, (list = []));
    list.push(r.user_id);
  }
  return out;
}
