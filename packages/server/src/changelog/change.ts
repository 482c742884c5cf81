import type { JobStatus } from '../jobs/runner/status.js';

/**
 * What the change log records. Each entry says what changed (enough for any consumer to act on
 * it without reading other rows), which cache keys it touches, and who may see it.
 */

/** A user as recorded in the log when created. */
export interface UserSnapshot {
  id: number;
  delivery_email: string | null;
  full_name: string;
  role: number;
  is_active: boolean;
  is_bot: boolean;
  avatar_version: number;
  timezone: string;
  date_joined: number;
}

/** A channel as recorded in the log when created. */
export interface StreamSnapshot {
  id: number;
  name: string;
  description: string;
  invite_only: boolean;
  history_public_to_subscribers: boolean;
  is_archived: boolean;
  creator_id: number | null;
  date_created: number;
}

export type UserField = 'full_name' | 'role' | 'delivery_email' | 'avatar_version' | 'timezone';
export type StreamProperty = 'name' | 'description' | 'invite_only' | 'history_public_to_subscribers';

/** A channel a change touches, with the privacy that decides who may see it. */
export interface StreamRef {
  id: number;
  inviteOnly: boolean;
  /** The channel is archived (only clients with the `archived_channels` capability show it). */
  archived?: boolean;
}

/**
 * The payload of each kind of change. Payloads are self-sufficient: whatever a client that gains
 * sight of something needs (a channel's state, its subscribers) is recorded with the change, so
 * that the events for any recipient are a function of the change and what that recipient could
 * see before it — never of rows read later.
 */
export interface ChangePayloads {
  'realm.created': { realmId: number; name: string };
  'user.created': { user: UserSnapshot };
  'user.updated': {
    userId: number;
    field: UserField;
    value: string | number | null;
    previous: string | number | null;
  };
  /** `streams`: the channels the user was subscribed to (archived ones marked), whose member lists lose them. */
  'user.deactivated': { userId: number; streams: StreamRef[] };
  /** `streams`: the channels the user is subscribed to (archived ones marked), whose member lists regain them. */
  'user.reactivated': { userId: number; streams: StreamRef[] };
  'user.credentials_changed': { userId: number };
  'stream.created': { stream: StreamSnapshot };
  'stream.updated': {
    streamId: number;
    property: StreamProperty;
    value: string | boolean;
    previous: string | boolean;
    /** The channel after the change and its active subscribers, for those who newly see it. */
    stream: StreamSnapshot;
    subscriberIds: number[];
  };
  /** `subscriberIds`: who was subscribed when it was archived. */
  /** `name`: the channel's name when archived (absent in entries written before it was recorded). */
  'stream.archived': { streamId: number; subscriberIds: number[]; name?: string };
  /** `stream` and `subscriberIds` (active, after the change) for the new subscribers' view. */
  'subscription.added': {
    streamId: number;
    userIds: number[];
    stream: StreamSnapshot;
    subscriberIds: number[];
  };
  'subscription.removed': {
    streamId: number;
    userIds: number[];
    stream: StreamSnapshot;
    subscriberIds: number[];
  };
  /** A job's state, progress or counts changed; `job` is its status derived at commit. */
  'job.updated': { job: JobStatus };
}

export type ChangeKind = keyof ChangePayloads;

/**
 * Who may see a change. `realm`: every user of the realm. `stream`: who can see that channel
 * (for a private one, its subscribers and administrators). `users`: exactly these users.
 */
export type Audience =
  | { scope: 'realm' }
  | { scope: 'stream'; streamId: number; inviteOnly: boolean }
  | { scope: 'users'; userIds: number[] }
  /** The realm's administrators and owners (job status). */
  | { scope: 'administrators' };

/** A change as a command records it, before it has a `seq`. */
export interface ChangeInput<K extends ChangeKind = ChangeKind> {
  kind: K;
  payload: ChangePayloads[K];
  cacheKeys: string[];
  audience: Audience;
}

/** A committed change, read back from the log. */
export type Change = {
  [K in ChangeKind]: ChangeInput<K> & { seq: number; realmId: number; createdAt: number };
}[ChangeKind];

/** Cache keys, named in one place so writers and readers cannot disagree. */
export const cacheKey = {
  user: (id: number) => `user:${id}`,
  /** The user id a lower-cased e-mail address belongs to (or none). */
  userByEmail: (realmId: number, emailKey: string) => `realm:${realmId}:email:${emailKey}`,
  usersOfRealm: (realmId: number) => `realm:${realmId}:users`,
  stream: (id: number) => `stream:${id}`,
  streamsOfRealm: (realmId: number) => `realm:${realmId}:streams`,
  subscribersOf: (streamId: number) => `stream:${streamId}:subscribers`,
  subscriptionsOf: (userId: number) => `user:${userId}:subscriptions`,
};
