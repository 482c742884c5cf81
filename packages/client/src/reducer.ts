import type { ClientState } from './state.js';
import type { Stream, Subscription, User, ZulipEvent } from './types.js';

type Handler = (state: ClientState, event: ZulipEvent) => void;

const ids = (v: unknown): number[] =>
  Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : [];

/** Zulip derives the role booleans from `role`; a role update carries only `role`. */
function withRole<T extends { role: number }>(u: T): T {
  return {
    ...u,
    is_owner: u.role === 100,
    is_admin: u.role === 100 || u.role === 200,
    is_guest: u.role === 600,
  };
}

const realmUser: Record<string, Handler> = {
  add: (state, e) => {
    const person = e.person as User;
    state.users.set(person.user_id, { ...person, is_active: person.is_active ?? true });
  },
  remove: (state, e) => {
    state.users.delete((e.person as { user_id: number }).user_id);
  },
  update: (state, e) => {
    const {
      user_id,
      new_email,
      avatar_source: _s,
      avatar_url_medium: _m,
      ...fields
    } = e.person as Record<string, unknown> & {
      user_id: number;
    };
    const user = state.users.get(user_id);
    if (!user) return;
    let next = { ...user, ...fields } as User;
    if (typeof new_email === 'string') next.email = new_email;
    if ('role' in fields) next = withRole(next);
    state.users.set(user_id, next);
  },
};

const STREAM_KEYS_FROM_SUBSCRIPTION = new Set([
  'color',
  'is_muted',
  'in_home_view',
  'pin_to_top',
  'subscribers',
]);
const NOTIFICATION_KEYS = [
  'desktop_notifications',
  'audible_notifications',
  'push_notifications',
  'email_notifications',
  'wildcard_mentions_notify',
];

function streamOf(sub: Record<string, unknown>): Stream {
  return Object.fromEntries(
    Object.entries(sub).filter(
      ([k]) => !STREAM_KEYS_FROM_SUBSCRIPTION.has(k) && !NOTIFICATION_KEYS.includes(k),
    ),
  ) as Stream;
}

const stream: Record<string, Handler> = {
  create: (state, e) => {
    for (const s of (e.streams as Stream[]) ?? []) {
      state.streams.set(s.stream_id, s);
      if (!state.subscribers.has(s.stream_id)) state.subscribers.set(s.stream_id, new Set());
    }
  },
  delete: (state, e) => {
    const gone = [
      ...ids(e.stream_ids),
      ...((e.streams as { stream_id: number }[]) ?? []).map((s) => s.stream_id),
    ];
    for (const id of gone) {
      state.streams.delete(id);
      state.subscriptions.delete(id);
      state.subscribers.delete(id);
    }
  },
  update: (state, e) => {
    const id = e.stream_id as number;
    const patch: Record<string, unknown> = { [e.property as string]: e.value };
    for (const extra of ['rendered_description', 'history_public_to_subscribers', 'is_web_public'])
      if (extra in e) patch[extra] = e[extra];
    const s = state.streams.get(id);
    if (s) state.streams.set(id, { ...s, ...patch } as Stream);
    const sub = state.subscriptions.get(id);
    if (sub) state.subscriptions.set(id, { ...sub, ...patch } as Subscription);
  },
};

const subscription: Record<string, Handler> = {
  add: (state, e) => {
    for (const raw of (e.subscriptions as (Subscription & { subscribers?: number[] })[]) ?? []) {
      const { subscribers, ...sub } = raw;
      state.subscriptions.set(sub.stream_id, sub);
      if (!state.streams.has(sub.stream_id)) state.streams.set(sub.stream_id, streamOf(raw));
      const members = state.subscribers.get(sub.stream_id) ?? new Set<number>();
      if (subscribers) {
        members.clear();
        for (const id of subscribers) members.add(id);
      }
      members.add(state.userId);
      state.subscribers.set(sub.stream_id, members);
    }
  },
  remove: (state, e) => {
    for (const { stream_id } of (e.subscriptions as { stream_id: number }[]) ?? []) {
      state.subscriptions.delete(stream_id);
      state.subscribers.get(stream_id)?.delete(state.userId);
    }
  },
  update: (state, e) => {
    const id = e.stream_id as number;
    const sub = state.subscriptions.get(id);
    if (sub) state.subscriptions.set(id, { ...sub, [e.property as string]: e.value } as Subscription);
  },
  peer_add: (state, e) => {
    for (const streamId of ids(e.stream_ids)) {
      const members = state.subscribers.get(streamId);
      if (members) for (const userId of ids(e.user_ids)) members.add(userId);
    }
  },
  peer_remove: (state, e) => {
    for (const streamId of ids(e.stream_ids)) {
      const members = state.subscribers.get(streamId);
      if (members) for (const userId of ids(e.user_ids)) members.delete(userId);
    }
  },
};

const handlers: Record<string, Record<string, Handler>> = { realm_user: realmUser, stream, subscription };

/**
 * Applies one event to the store, in place. Events of types the store does not hold (messages,
 * presence, heartbeats) leave it unchanged. The server's equivalence test runs this same code:
 * register + every event = a fresh register.
 */
export function applyEvent(state: ClientState, event: ZulipEvent): void {
  handlers[event.type]?.[event.op ?? '']?.(state, event);
}
