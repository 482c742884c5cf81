import type { Kysely } from 'kysely';
import { canAccessStream } from '../domain/streams/streamRecord.js';
import type { PresentContext } from '../http/presenters/user.js';
import { presentUser } from '../http/presenters/user.js';
import { presentStream, presentSubscription } from '../http/presenters/stream.js';
import { fail } from '../errors.js';
import type { Database, UserRow } from '../store/schema.js';
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
 * Reads the state a user may see, and the log head, in one database snapshot, so that nothing is
 * missed or counted twice between the state and the queue that follows it.
 */
export async function takeSnapshot(
  store: Store,
  realmId: number,
  userId: number,
  present: PresentContext,
  opts: { fetchEventTypes: readonly string[]; includeSubscribers: boolean; archivedChannels?: boolean },
): Promise<Snapshot> {
  return store.readSnapshot(async (db) => {
    const head = await db
      .selectFrom('changelog_head')
      .select('seq')
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    const me = await db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
    if (!me || !me.is_active) throw fail.badRequest('Account is deactivated');
    const mySubs = await db
      .selectFrom('subscriptions')
      .innerJoin('streams', 'streams.id', 'subscriptions.stream_id')
      .selectAll('subscriptions')
      .where('subscriptions.user_id', '=', userId)
      // Clients with `archived_channels` keep archived channels and their subscriptions.
      .$if(!opts.archivedChannels, (q) => q.where('streams.is_archived', '=', 0))
      .execute();
    const view: RecipientView = {
      userId,
      role: me.role,
      subscribed: new Set(mySubs.map((s) => s.stream_id)),
    };
    const state: Record<string, unknown> = {};
    const wants = (t: string) => opts.fetchEventTypes.includes(t);

    if (wants('realm_user')) {
      const users = await db
        .selectFrom('users')
        .selectAll()
        .where('realm_id', '=', realmId)
        .orderBy('id')
        .execute();
      const shown = (u: UserRow) => {
        const { is_active: _omit, ...person } = presentUser(present, u);
        return person;
      };
      state.realm_users = users.filter((u) => u.is_active).map(shown);
      state.realm_non_active_users = users.filter((u) => !u.is_active).map(shown);
    }

    if (wants('stream') || wants('subscription')) {
      const streams = await db
        .selectFrom('streams')
        .selectAll()
        .where('realm_id', '=', realmId)
        .$if(!opts.archivedChannels, (q) => q.where('is_archived', '=', 0))
        .orderBy('id')
        .execute();
      const visible = streams.filter((s) => canAccessStream(me, s, view.subscribed.has(s.id)));
      const members = await activeSubscribers(db, realmId);
      const count = (id: number) => members.get(id)?.length ?? 0;
      if (wants('stream')) state.streams = visible.map((s) => presentStream(s, count(s.id)));
      if (wants('subscription')) {
        const byStream = new Map(mySubs.map((s) => [s.stream_id, s]));
        const subscribers = (id: number) => (opts.includeSubscribers ? (members.get(id) ?? []) : undefined);
        state.subscriptions = visible
          .filter((s) => byStream.has(s.id))
          .map((s) => presentSubscription(byStream.get(s.id)!, s, subscribers(s.id), count(s.id)));
        state.unsubscribed = [];
        state.never_subscribed = visible
          .filter((s) => !byStream.has(s.id))
          .map((s) => ({
            ...presentStream(s, count(s.id)),
            ...(opts.includeSubscribers ? { subscribers: members.get(s.id) ?? [] } : {}),
          }));
      }
    }
    return { seq: head.seq, view, state };
  });
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
