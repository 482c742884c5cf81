import type { Generated, Insertable, Selectable } from 'kysely';

/*
 * Table types shared by both backends. Conventions that keep one set of queries valid on SQLite
 * and PostgreSQL: times are epoch milliseconds (bigint), flags are 0/1 integers, structured
 * values are JSON text.
 */

export interface RealmTable {
  id: Generated<number>;
  string_id: string;
  name: string;
  date_created: number;
}

export interface UserTable {
  id: Generated<number>;
  realm_id: number;
  /** The e-mail address the user logs in with; null for imported users and bots without one. */
  delivery_email: string | null;
  /** Lower-cased delivery_email, unique per realm, for look-ups. */
  email_key: string | null;
  full_name: string;
  role: number;
  is_active: number;
  is_bot: number;
  password_hash: string | null;
  api_key: string;
  avatar_version: number;
  timezone: string;
  date_joined: number;
}

export interface SessionTable {
  id: string;
  realm_id: number;
  user_id: number;
  created_at: number;
  expires_at: number;
}

export interface StreamTable {
  id: Generated<number>;
  realm_id: number;
  name: string;
  /** Lower-cased name, unique per realm among channels that are not archived. */
  name_key: string;
  description: string;
  invite_only: number;
  history_public_to_subscribers: number;
  is_archived: number;
  creator_id: number | null;
  date_created: number;
}

export interface SubscriptionTable {
  id: Generated<number>;
  realm_id: number;
  user_id: number;
  stream_id: number;
  color: string;
  is_muted: number;
  pin_to_top: number;
  date_created: number;
}

export interface ChangeTable {
  seq: number;
  realm_id: number;
  kind: string;
  /** JSON: what changed, enough for every consumer to act without reading other rows. */
  payload: string;
  /** JSON array of cache keys the change invalidates. */
  cache_keys: string;
  /** JSON: who may see the change (see changelog/change.ts). */
  audience: string;
  created_at: number;
}

export interface ChangelogHeadTable {
  id: number;
  seq: number;
}

export interface ConsumerCursorTable {
  name: string;
  seq: number;
  updated_at: number;
}

export interface EventQueueTable {
  id: string;
  realm_id: number;
  user_id: number;
  /** JSON: event types, include_subscribers. */
  options: string;
  created_at: number;
  last_access_at: number;
  /** Log position the checkpoint reflects. */
  checkpoint_seq: number;
  /** The id the next derived event gets. */
  checkpoint_event_id: number;
  /** JSON: the user's view at checkpoint_seq (events/view.ts). */
  checkpoint_view: string;
}

/** An uploaded avatar's original bytes (migration 003-avatars). */
export interface AvatarTable {
  user_id: number;
  content: Buffer;
  /** sharp's name of the decoded format: jpeg, png, webp, gif or heif (AVIF). */
  format: string;
  /** Hex SHA-256 of `content`: the key of everything derived from it. */
  sha256: string;
  uploaded_at: number;
}

/** A directory source (migration 005-directory): a connector, its settings and a schedule. */
export interface DirectorySourceTable {
  id: Generated<number>;
  realm_id: number;
  name: string;
  /** 'ldap' | 'csv' */
  connector: string;
  /** JSON: the connector's settings (jobs/directory/settings.ts). */
  settings: string;
  /** Seconds between scheduled syncs; null for "sync now" only. */
  schedule: number | null;
  /** 0/1: deactivate linked users the source no longer lists. */
  deactivate_missing: number;
  created_at: number;
}

/** Which Concord user an external id of a source is. */
export interface DirectoryLinkTable {
  source_id: number;
  external_id: string;
  user_id: number;
}

/** Which channel a group of a source maps to. */
export interface DirectoryGroupTable {
  source_id: number;
  name: string;
  stream_id: number;
}

/** A node of the cluster and its last self-report (JSON), for the cluster status endpoint. */
export interface NodeTable {
  node_id: string;
  url: string;
  started_at: number;
  updated_at: number;
  report: string;
}

/** A background job (migration 004-jobs): the one row its runner, workers and reaper agree on. */
export interface JobTable {
  id: Generated<number>;
  realm_id: number;
  kind: string;
  /** JSON: what the handler gets as `run.payload`. */
  payload: string;
  /** queued | running | retrying | succeeded | failed | canceled (jobs/job.ts JobState). */
  state: string;
  /** Incremented by every claim; part of the fence. */
  attempt: number;
  max_attempts: number;
  /** The current attempt's fencing token (null when no attempt holds the job). */
  lease_token: string | null;
  lease_expires_at: number | null;
  /** When the current (or last) attempt was claimed. */
  claimed_at: number | null;
  /** Not claimable before this time (backoff after a failed or expired attempt). */
  run_after: number;
  /** The hard bound on one attempt, and its absolute end for the current attempt. */
  deadline_ms: number;
  deadline_at: number | null;
  cancel_requested: number;
  progress_done: number;
  progress_total: number | null;
  /** JSON: JobCounts. */
  counts: string;
  error: string | null;
  /** Why the job is retrying (the last attempt's failure or expiry). */
  retry_reason: string | null;
  /** At most one active (queued, running, retrying) job per key and realm. */
  singleton_key: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
}

/** One attempt of a job, for its history. */
export interface JobRunTable {
  id: Generated<number>;
  job_id: number;
  attempt: number;
  /** Which runner (node id) claimed it. */
  worker: string;
  /** running | succeeded | failed | expired | canceled | released */
  outcome: string;
  error: string | null;
  /** JSON: RowError[]. */
  row_errors: string;
  /** JSON: JobCounts at the end of the attempt. */
  counts: string;
  started_at: number;
  finished_at: number | null;
}

export interface Database {
  realms: RealmTable;
  users: UserTable;
  sessions: SessionTable;
  streams: StreamTable;
  subscriptions: SubscriptionTable;
  changes: ChangeTable;
  changelog_head: ChangelogHeadTable;
  consumer_cursors: ConsumerCursorTable;
  event_queues: EventQueueTable;
  avatars: AvatarTable;
  jobs: JobTable;
  job_runs: JobRunTable;
  concord_nodes: NodeTable;
  directory_sources: DirectorySourceTable;
  directory_links: DirectoryLinkTable;
  directory_groups: DirectoryGroupTable;
}

export type UserRow = Selectable<UserTable>;
export type NewUser = Insertable<UserTable>;
export type StreamRow = Selectable<StreamTable>;
export type SubscriptionRow = Selectable<SubscriptionTable>;
export type ChangeRow = Selectable<ChangeTable>;
export type RealmRow = Selectable<RealmTable>;
export type JobRow = Selectable<JobTable>;
export type JobRunRow = Selectable<JobRunTable>;
export type DirectorySourceRow = Selectable<DirectorySourceTable>;
