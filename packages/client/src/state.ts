import type { RegisterResponse, Stream, Subscription, User } from './types.js';

/**
 * The normalized store a client keeps: every user, every channel it may see, its own
 * subscriptions, and the subscribers of every channel it may see. Register fills it; the
 * reducer keeps it current; every view reads from it.
 */
export interface ClientState {
  userId: number;
  users: Map<number, User>;
  streams: Map<number, Stream>;
  subscriptions: Map<number, Subscription>;
  subscribers: Map<number, Set<number>>;
}

const withoutSubscribers = <T extends { subscribers?: unknown }>(s: T): Omit<T, 'subscribers'> => {
  const { subscribers: _drop, ...rest } = s;
  return rest;
};

/** The store as a register response describes it. */
export function stateFromRegister(r: RegisterResponse): ClientState {
  const state: ClientState = {
    userId: r.user_id ?? -1,
    users: new Map(),
    streams: new Map(),
    subscriptions: new Map(),
    subscribers: new Map(),
  };
  for (const u of r.realm_users ?? []) state.users.set(u.user_id, { ...u, is_active: true });
  for (const u of r.realm_non_active_users ?? []) state.users.set(u.user_id, { ...u, is_active: false });
  for (const s of r.streams ?? []) state.streams.set(s.stream_id, s);
  for (const list of [r.subscriptions ?? [], r.unsubscribed ?? [], r.never_subscribed ?? []]) {
    for (const s of list) if (s.subscribers) state.subscribers.set(s.stream_id, new Set(s.subscribers));
  }
  for (const s of r.subscriptions ?? [])
    state.subscriptions.set(s.stream_id, withoutSubscribers(s) as Subscription);
  return state;
}

/**
 * A plain, order-independent rendering of the store, for comparing two stores. Derived counts
 * (`subscriber_count`) are taken from the subscriber sets, which is what a client shows.
 */
export function normalizeState(state: ClientState): unknown {
  const sorted = <T>(m: Map<number, T>) => [...m.entries()].sort(([a], [b]) => a - b);
  const count = (id: number, fallback: unknown) => state.subscribers.get(id)?.size ?? fallback;
  return {
    userId: state.userId,
    users: sorted(state.users).map(([, u]) => u),
    streams: sorted(state.streams).map(([id, s]) => ({
      ...s,
      subscriber_count: count(id, s.subscriber_count),
    })),
    subscriptions: sorted(state.subscriptions).map(([id, s]) => ({
      ...s,
      subscriber_count: count(id, s.subscriber_count),
    })),
    subscribers: sorted(state.subscribers).map(([id, set]) => [id, [...set].sort((a, b) => a - b)]),
  };
}
