import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Change } from '../changelog/change.js';
import type { ChangeLog } from '../changelog/log.js';
import { ConcordError } from '../errors.js';
import type { PresentContext } from '../http/presenters/user.js';
import type { Store } from '../store/store.js';
import { CheckpointWriter } from './checkpoints.js';
import { derive, optionsKey } from './derive.js';
import type { Checkpoint, PendingEvent, QueueOptions, QueuedEvent } from './queue.js';
import { EventQueue } from './queue.js';
import { RecentChanges } from './recentChanges.js';
import type { Snapshot, SnapshotOptions, SnapshotRows } from './snapshot.js';
import { buildSnapshot, readSnapshotRows } from './snapshot.js';
import type { StoredView } from './view.js';
import { storeView, subscribedKey, viewKey } from './view.js';

/** Timing of queues, from the configuration. */
export interface QueueTiming {
  /** An unpolled queue expires after this long. */
  idleTimeoutMs: number;
  /** Advertised `event_queue_longpoll_timeout_seconds`; heartbeats come well before it. */
  longpollSeconds: number;
}

/** Something waiting on a queue of this node: told (synchronously) after the queue advanced. */
interface Listener {
  notify(): void;
  /** Ends the wait now (shutdown). */
  release(): void;
}

/** Where a stream sends what its queue yields. */
export interface StreamSink {
  /** Events after those already sent, in order; their `shared.batch` frames may be reused. */
  events(pending: readonly PendingEvent[]): void;
  heartbeat(): void;
  /** The stream is over: the queue ended or failed (`err`), or the node is shutting down (null). */
  end(err: unknown): void;
}

/** An open stream on a queue: acknowledge what the client has, and close it. */
export interface QueueStream {
  acknowledge(lastEventId: number): void;
  close(): void;
}

/** Where a register's rows may come from besides the database: the node's cache. */
export interface RegisterRowSource {
  /** The rows as of one log position, or null when they cannot be had that way. */
  registerRows(userId: number, opts: SnapshotOptions): Promise<SnapshotRows | null>;
}

const badQueue = (queueId: string, why = `Bad event queue ID: ${queueId}`) =>
  new ConcordError('BAD_EVENT_QUEUE_ID', why, { queue_id: queueId });

/**
 * The node's event queues: register, poll (long or not), stream, delete. Queues live in the
 * database as checkpoints; this service keeps the ones in use on this node in memory and advances
 * them from the node's window of recent changes, so each change is read once per node. Queues
 * being waited on are advanced as soon as a change arrives, grouped by view: each change is
 * derived (and serialized) once per distinct view, not once per queue.
 */
export class QueueService {
  private readonly queues = new Map<string, EventQueue>();
  /** Long polls and streams waiting on each queue of this node. */
  private readonly listeners = new Map<string, Set<Listener>>();
  /** When this node last used each in-memory queue, to forget idle ones. */
  private readonly lastUsed = new Map<string, number>();
  /** Subscription sets are shared between queues with equal views: their keys are computed once. */
  private readonly keys = new WeakMap<object, string>();
  private readonly checkpoints: CheckpointWriter;
  readonly recent = new RecentChanges();
  /** The log position up to which this node has read changes (the events tail's cursor). */
  private headSeq = 0;
  /** Set at shutdown: waiting polls are released with a heartbeat and no new one waits. */
  private closing = false;

  constructor(
    private readonly store: Store,
    private readonly log: ChangeLog,
    private readonly realmId: number,
    private readonly present: PresentContext,
    private readonly timing: QueueTiming,
    private readonly logger: Logger,
    private readonly snapshots: {
      /** Registers read their state from here when it can say (else from the database). */
      cache?: RegisterRowSource;
      /** Told where each register's state came from. */
      onSnapshot?(source: 'cache' | 'database'): void;
    } = {},
  ) {
    this.checkpoints = new CheckpointWriter(store, logger, 1000, Math.min(30_000, timing.idleTimeoutMs / 4));
  }

  /** Where the node's events tail starts. */
  startAt(seq: number): void {
    this.headSeq = seq;
  }

  /** Called by the node's events tail with each batch of consecutive changes. */
  onChanges(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    this.recent.push(changes);
    this.headSeq = changes[changes.length - 1]!.seq;
    this.fanOut();
  }

  /** Called when the events tail fell behind the retained log: queues older than it will fail. */
  onReset(seq: number): void {
    this.recent.clear();
    this.headSeq = seq;
  }

  /** Registers a queue for `userId`: the initial state and a queue holding exactly what follows it. */
  async register(
    userId: number,
    options: QueueOptions,
    fetchEventTypes: readonly string[],
  ): Promise<{ queueId: string; snapshot: Snapshot }> {
    const opts: SnapshotOptions = {
      fetchEventTypes,
      includeSubscribers: options.includeSubscribers,
      archivedChannels: options.archivedChannels ?? false,
    };
    // The state at one log position: the cache's when it has every row as of its cursor (no
    // database read at all), else one database snapshot. Either way the queue starts right after it.
    const cached = (await this.snapshots.cache?.registerRows(userId, opts)) ?? null;
    const rows = cached ?? (await readSnapshotRows(this.store, this.realmId, userId, opts));
    this.snapshots.onSnapshot?.(cached ? 'cache' : 'database');
    const snapshot = buildSnapshot(rows, userId, this.present, opts);
    const queueId = randomUUID();
    const checkpoint: Checkpoint = { seq: snapshot.seq, nextEventId: 0, view: storeView(snapshot.view) };
    const now = Date.now();
    await this.store.db
      .insertInto('event_queues')
      .values({
        id: queueId,
        realm_id: this.realmId,
        user_id: userId,
        options: JSON.stringify(options),
        created_at: now,
        last_access_at: now,
        checkpoint_seq: checkpoint.seq,
        checkpoint_event_id: checkpoint.nextEventId,
        checkpoint_view: JSON.stringify(checkpoint.view),
      })
      .execute();
    this.queues.set(
      queueId,
      new EventQueue(queueId, userId, this.realmId, options, checkpoint, this.present),
    );
    this.lastUsed.set(queueId, now);
    return { queueId, snapshot };
  }

  /**
   * Acknowledges `lastEventId` and returns the events after it (or after `opts.after`), waiting up
   * to the long-poll hold for new ones unless `dontBlock`; an empty wait ends with a heartbeat,
   * which takes a new event id like Zulip's. Throws BAD_EVENT_QUEUE_ID for unknown, expired,
   * deleted or ended queues and for a `lastEventId` older than the queue retains.
   */
  async poll(
    queueId: string,
    userId: number,
    lastEventId: number,
    opts: { dontBlock: boolean; signal?: AbortSignal; after?: number },
  ): Promise<QueuedEvent[]> {
    let queue = await this.open(queueId, userId, lastEventId);
    const after = Math.max(lastEventId, opts.after ?? lastEventId);
    const ready = () => (this.queues.get(queueId) ?? queue).events(after);
    if (ready().length > 0) return ready();
    if (queue.ended) {
      await this.drop(queueId);
      throw badQueue(queueId, `Event queue ${queueId} ended (${queue.ended}); register again`);
    }
    if (opts.dontBlock) return [];

    if (this.closing) return [{ type: 'heartbeat', id: Math.max(lastEventId, queue.lastEventId) }];
    const holdMs = this.timing.longpollSeconds * 1000 * (0.5 + Math.random() * 0.15);
    const events = await new Promise<QueuedEvent[]>((resolve) => {
      let done = false;
      const finish = (events: QueuedEvent[]) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.unlisten(queueId, listener);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(events);
      };
      const listener: Listener = {
        release: () => finish([]),
        notify: () => {
          const current = this.queues.get(queueId);
          if (!current) return finish([]);
          const events = current.events(after);
          if (events.length > 0 || current.ended) finish(events);
        },
      };
      const onAbort = () => finish([]);
      const timer = setTimeout(() => finish([]), holdMs);
      this.listen(queueId, listener);
      // Changes that arrived while this poll was advancing rang no listener: look once more now
      // that it is registered, or they would wait for the next change or heartbeat.
      this.catchUp(queue, listener);
      opts.signal?.addEventListener('abort', onAbort);
      if (opts.signal?.aborted) onAbort();
    });
    if (events.length > 0) return events;
    // Deleted (DELETE /events) while this poll waited: answer as for any unknown queue.
    if (!this.queues.has(queueId) && !this.closing && !opts.signal?.aborted) throw badQueue(queueId);
    queue = this.queues.get(queueId) ?? queue;
    if (queue.ended || this.closing || opts.signal?.aborted)
      return [{ type: 'heartbeat', id: Math.max(lastEventId, queue.lastEventId) }];
    return [{ type: 'heartbeat', id: await this.heartbeatId(queue, lastEventId) }];
  }

  /**
   * Opens a stream on a queue: everything after `lastEventId` now, then each new event as it is
   * derived, and a heartbeat (with a check that the queue still exists) every long-poll hold.
   * Throws like {@link poll} when the queue cannot be read.
   */
  async stream(queueId: string, userId: number, lastEventId: number, sink: StreamSink): Promise<QueueStream> {
    const queue = await this.open(queueId, userId, lastEventId);
    let sent = lastEventId;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      this.unlisten(queueId, listener);
    };
    const end = (err: unknown) => {
      if (closed) return;
      close();
      sink.end(err);
    };
    const listener: Listener = {
      release: () => end(null),
      notify: () => {
        const current = this.queues.get(queueId);
        if (!current) return end(badQueue(queueId));
        const pending = current.pendingAfter(sent);
        if (pending.length > 0) {
          sink.events(pending);
          sent = pending[pending.length - 1]!.id;
        }
        if (current.ended) {
          end(badQueue(queueId, `Event queue ${queueId} ended (${current.ended}); register again`));
          void this.drop(queueId).catch((err: unknown) =>
            this.logger.warn({ err, queueId }, 'dropping a queue failed'),
          );
        }
      },
    };
    const beat = async () => {
      const current = await this.load(queueId, userId);
      await this.advance(current);
      this.checkpoints.touch(current);
      if (closed) return;
      listener.notify();
      if (!closed) sink.heartbeat();
    };
    const timer = setInterval(
      () => beat().catch(end),
      this.timing.longpollSeconds * 1000 * (0.5 + Math.random() * 0.15),
    );
    this.listen(queueId, listener);
    listener.notify();
    this.catchUp(queue, listener);
    return {
      acknowledge: (id) => {
        const current = this.queues.get(queueId);
        if (!current) return;
        current.acknowledge(id);
        this.lastUsed.set(queueId, Date.now());
        this.checkpoints.touch(current);
      },
      close,
    };
  }

  /** Deletes a queue (DELETE /events). */
  async delete(queueId: string, userId: number): Promise<void> {
    await this.load(queueId, userId);
    await this.drop(queueId);
  }

  /** Removes queues nobody polled within the idle timeout; returns how many. */
  async sweepExpired(now = Date.now()): Promise<number> {
    const cutoff = now - this.timing.idleTimeoutMs;
    const result = await this.store.db
      .deleteFrom('event_queues')
      .where('last_access_at', '<', cutoff)
      .executeTakeFirst();
    for (const [id, used] of this.lastUsed) {
      if (used < cutoff && !this.listeners.has(id)) {
        this.lastUsed.delete(id);
        this.queues.delete(id);
      }
    }
    return Number(result.numDeletedRows);
  }

  /** Number of queues held in memory on this node. */
  get size(): number {
    return this.queues.size;
  }

  /** Releases every waiting poll and stream, and writes the queue positions not yet written. */
  async close(): Promise<void> {
    this.closing = true;
    for (const set of [...this.listeners.values()]) for (const l of [...set]) l.release();
    this.listeners.clear();
    await this.checkpoints.close();
  }

  /** Loads a queue, acknowledges `lastEventId` and brings it up to what this node has read. */
  private async open(queueId: string, userId: number, lastEventId: number): Promise<EventQueue> {
    const queue = await this.load(queueId, userId);
    if (lastEventId < queue.acknowledged)
      throw badQueue(
        queueId,
        `Event ${lastEventId} is older than queue ${queueId} retains (${queue.acknowledged}); register again`,
      );
    queue.acknowledge(lastEventId);
    await this.advance(queue);
    // A copy rebuilt from an older checkpoint derived again what the client had acknowledged.
    queue.acknowledge(lastEventId);
    this.checkpoints.touch(queue);
    return queue;
  }

  /** Gives a heartbeat a new id and writes it before it is sent, so that no later event reuses it. */
  private async heartbeatId(queue: EventQueue, lastEventId: number): Promise<number> {
    const id = queue.heartbeatId(lastEventId);
    if (id === null) return Math.max(lastEventId, queue.lastEventId);
    this.checkpoints.touch(queue);
    await this.checkpoints.flush();
    return id;
  }

  /**
   * Advances every queue something waits on to the node's head, deriving each run of changes once
   * per group of queues at the same position with the same view and options, then tells the
   * waiters. A queue behind the node's window catches up from the database on its own.
   */
  private fanOut(): void {
    const groups = new Map<string, EventQueue[]>();
    for (const id of this.listeners.keys()) {
      const queue = this.queues.get(id);
      if (!queue || queue.cursor >= this.headSeq) continue;
      const key = `${queue.cursor}|${queue.ended ?? ''}|${this.optionsKeyOf(queue)}|${this.viewKeyOf(queue)}`;
      const group = groups.get(key);
      if (group) group.push(queue);
      else groups.set(key, [queue]);
    }
    for (const group of groups.values()) {
      const first = group[0]!;
      const window = this.recent.between(first.cursor, this.headSeq);
      if (!window) {
        for (const queue of group) this.catchUp(queue);
        continue;
      }
      const d = derive(window, first, this.realmId, this.present);
      for (const queue of group) queue.take(d);
    }
    for (const id of [...this.listeners.keys()]) this.notify(id);
  }

  private optionsKeyOf(queue: EventQueue): string {
    let key = this.keys.get(queue.options);
    if (key === undefined) this.keys.set(queue.options, (key = optionsKey(queue.options)));
    return key;
  }

  private viewKeyOf(queue: EventQueue): string {
    const view = queue.currentView;
    let key = this.keys.get(view.subscribed);
    if (key === undefined) {
      key = subscribedKey(view.subscribed);
      this.keys.set(view.subscribed, key);
    }
    return viewKey(view, key);
  }

  /** Advances `queue` on its own (from the database if need be), then tells its listeners. */
  private catchUp(queue: EventQueue, only?: Listener): void {
    this.advance(queue)
      .then(() => (only ? only.notify() : this.notify(queue.id)))
      .catch((err: unknown) => {
        this.logger.warn({ err, queueId: queue.id }, 'advancing a waiting queue failed');
        for (const l of [...(this.listeners.get(queue.id) ?? [])]) if (!only || l === only) l.release();
      });
  }

  private notify(queueId: string): void {
    const set = this.listeners.get(queueId);
    if (!set) return;
    // A listener may remove itself while notified: iterate a copy unless there is only one.
    if (set.size === 1) for (const l of set) l.notify();
    else for (const l of [...set]) l.notify();
  }

  private listen(queueId: string, listener: Listener): void {
    let set = this.listeners.get(queueId);
    if (!set) this.listeners.set(queueId, (set = new Set()));
    set.add(listener);
  }

  private unlisten(queueId: string, listener: Listener): void {
    const set = this.listeners.get(queueId);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) this.listeners.delete(queueId);
  }

  private async load(queueId: string, userId: number): Promise<EventQueue> {
    const row = await this.store.db
      .selectFrom('event_queues')
      .selectAll()
      .where('id', '=', queueId)
      .executeTakeFirst();
    if (!row || row.user_id !== userId || row.realm_id !== this.realmId) {
      this.queues.delete(queueId);
      throw badQueue(queueId);
    }
    if (Date.now() - Number(row.last_access_at) > this.timing.idleTimeoutMs && !this.listeners.has(queueId)) {
      await this.drop(queueId);
      throw badQueue(queueId);
    }
    const seq = Number(row.checkpoint_seq);
    const nextEventId = Number(row.checkpoint_event_id);
    let queue = this.queues.get(queueId);
    // A checkpoint ahead of what this node wrote was written by another node (it advanced the
    // queue, or gave a heartbeat an id): this copy is stale and is rebuilt from the row.
    if (
      queue &&
      (seq > queue.written.seq || (seq === queue.written.seq && nextEventId > queue.written.nextEventId))
    )
      queue = undefined;
    if (!queue) {
      // Another node registered it, or this node restarted: rebuild it from its checkpoint. The
      // events it derives carry the same ids as those any node delivered before.
      const stored = JSON.parse(row.checkpoint_view) as StoredView & { lastRealEventId?: number };
      queue = new EventQueue(
        queueId,
        userId,
        this.realmId,
        JSON.parse(row.options) as QueueOptions,
        { seq, nextEventId, view: stored, lastRealEventId: stored.lastRealEventId },
        this.present,
      );
      this.queues.set(queueId, queue);
    }
    this.lastUsed.set(queueId, Date.now());
    return queue;
  }

  /** Derives the queue's events up to what this node has read of the log. */
  private async advance(queue: EventQueue): Promise<void> {
    const target = this.headSeq;
    if (queue.cursor >= target) return;
    const window = this.recent.between(queue.cursor, target);
    if (window) {
      queue.advance(window);
      return;
    }
    while (queue.cursor < target) {
      const changes = await this.log.readSince(queue.cursor, Math.min(1000, target - queue.cursor));
      if (changes.length === 0 || changes[0]!.seq !== queue.cursor + 1) {
        await this.drop(queue.id);
        throw badQueue(
          queue.id,
          `Event queue ${queue.id} fell behind the retained change log; register again`,
        );
      }
      queue.advance(changes.filter((c) => c.seq <= target));
    }
  }

  private async drop(queueId: string): Promise<void> {
    this.queues.delete(queueId);
    this.lastUsed.delete(queueId);
    this.checkpoints.forget(queueId);
    await this.store.db.deleteFrom('event_queues').where('id', '=', queueId).execute();
    // Polls and streams waiting on it on this node end now, not at their next heartbeat.
    for (const l of [...(this.listeners.get(queueId) ?? [])]) l.notify();
  }
}
