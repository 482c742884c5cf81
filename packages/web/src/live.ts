import { ConcordClient } from '@concord/client';
import type { ClientState, User } from '@concord/client';
import { createContext, useContext, useSyncExternalStore } from 'react';
import type { Session } from './session.js';

export type LinkStatus = 'connecting' | 'live' | 'reconnecting' | 'stopped';

/** A background job as the server derives it (jobs/runner/status.ts), pushed as `concord_job`. */
export interface JobStatus {
  id: number;
  kind: string;
  state: 'queued' | 'running' | 'retrying' | 'stalled' | 'succeeded' | 'failed' | 'canceled';
  attempt: number;
  max_attempts: number;
  progress: { done: number; total: number | null };
  counts: Record<string, number>;
  error: string | null;
  retry_reason: string | null;
  retries_at: number | null;
  unclaimed: boolean;
  cancel_requested: boolean;
  singleton_key: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/** The event types the store follows. `concord_job` reaches administrators only (the server decides). */
const EVENT_TYPES = ['realm_user', 'subscription', 'stream', 'concord_job'];

/**
 * The one store of the app: register + events through the client package's reducer. Every view
 * reads people, channels and subscribers from here, so a change shows everywhere at once.
 */
export class LiveStore {
  readonly client: ConcordClient;
  status: LinkStatus = 'connecting';
  error: string | null = null;
  /**
   * Jobs seen in `concord_job` events since register, newest status per id. Pages merge these
   * over what they fetched, so a sync's state moves without polling.
   */
  readonly jobs = new Map<number, JobStatus>();
  private version = 0;
  private readonly listeners = new Set<() => void>();

  constructor(readonly session: Session) {
    this.client = new ConcordClient({
      baseUrl: location.origin,
      email: session.email,
      apiKey: session.apiKey,
      eventTypes: EVENT_TYPES,
      onEvent: (event) => {
        if (event.type !== 'concord_job') return;
        const job = event.job as JobStatus | undefined;
        if (job && typeof job.id === 'number') this.jobs.set(job.id, job);
      },
      onState: () => this.bump(),
      onStatus: (s) => {
        this.status = s;
        this.bump();
      },
    });
  }

  get state(): ClientState | null {
    return this.client.state;
  }

  /** Registers (retrying with backoff while the server is unavailable) and follows events. */
  async start(): Promise<void> {
    try {
      await this.client.start();
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.bump();
      throw err;
    }
  }

  stop(): Promise<void> {
    return this.client.stop();
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getVersion = (): number => this.version;

  private bump(): void {
    this.version++;
    for (const fn of this.listeners) fn();
  }
}

export const LiveContext = createContext<LiveStore | null>(null);

/** The live store, re-rendering the caller on every change to it. */
export function useLive(): LiveStore {
  const store = useContext(LiveContext);
  if (!store) throw new Error('useLive outside a LiveContext');
  useSyncExternalStore(store.subscribe, store.getVersion);
  return store;
}

/** The people of the workspace, sorted by name. */
export function sortedUsers(state: ClientState): User[] {
  return [...state.users.values()].sort((a, b) => a.full_name.localeCompare(b.full_name));
}

export const roleNames: Record<number, string> = {
  100: 'Owner',
  200: 'Administrator',
  300: 'Moderator',
  400: 'Member',
  600: 'Guest',
};

export function isAdmin(user: User | undefined): boolean {
  return user !== undefined && (user.role === 100 || user.role === 200);
}
