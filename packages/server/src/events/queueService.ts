import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Change } from '../changelog/change.js';
import type { ChangeLog } from '../changelog/log.js';
import { ConcordError } from '../errors.js';
import type { PresentContext } from '../http/presenters/user.js';
import type { Store } from '../store/store.js';
import type { Checkpoint, QueueOptions, QueuedEvent } from './queue.js';
import { EventQueue } from './queue.js';
import { RecentChanges } from './recentChanges.js';
import type { Snapshot } from './snapshot.js';
import { takeSnapshot } from './snapshot.js';
import { storeView } from './view.js';

/** Timing of queues, from the configuration. */
export interface QueueTiming {
  /** An unpolled queue expires after this long. */
  idleTimeoutMs: number;
  /** Advertised `event_queue_longpoll_timeout_seconds`; heartbeats come well before it. */
  longpollSeconds: number;
}

interface Waiter {
  queue: EventQueue;
  wake(): void;
  /** Ends the wait now (shutdown). */
  release(): void;
}

const badQueue = (queueId: string, why = `Bad event queue ID: ${queueId}`) =>
  new ConcordError('BAD_EVENT_QUEUE_ID', why, { queue_id: queueId });

/**
 * The node's event queues: register, poll (long or not), delete. Queues live in the database as
 * checkpoints; this service keeps the ones in use on this node in memory and advances them from
 * the node's window of recent changes, so each change is read once per node.
 */
export class QueueService {
  private readonly queues = new Map<string, EventQueue>();
  private readonly waiters = new Set<Waiter>();
  /** When this node last used each in-memory queue, to forget idle ones. */
  private readonly lastUsed = new Map<string, number>();
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
  ) {}

  /** Where the node's events tail starts. */
  startAt(seq: number): void {
    this.headSeq = seq;
  }

  /** Called by the node's events tail with each batch of consecutive changes. */
  onChanges(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    this.recent.push(changes);
    this.headSeq = changes[changes.length - 1]!.seq;
    for (const waiter of this.waiters) waiter.wake();
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
    const snapshot = await takeSnapshot(this.store, this.realmId, userId, this.present, {
      fetchEventTypes,
      includeSubscribers: options.includeSubscribers,
    });
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
   * Acknowledges `lastEventId` and returns the events after it (or after `opts.after`, for a
   * stream that already wrote some), waiting up to the long-poll hold for new ones unless
   * `dontBlock`; an empty wait ends with a heartbeat. Throws BAD_EVENT_QUEUE_ID for unknown,
   * expired, deleted or ended queues and for a `lastEventId` older than the queue retains.
   */
  async poll(
    queueId: string,
    userId: number,
    lastEventId: number,
    opts: { dontBlock: boolean; signal?: AbortSignal; after?: number },
  ): Promise<QueuedEvent[]> {
    const queue = await this.load(queueId, userId);
    if (lastEventId < queue.acknowledged)
      throw badQueue(
        queueId,
        `Event ${lastEventId} is older than queue ${queueId} retains (${queue.acknowledged}); register again`,
      );
    queue.acknowledge(lastEventId);
    await this.advance(queue);
    await this.persist(queue);
    // A stream has written events the client has not acknowledged yet: it asks only for newer ones.
    const after = Math.max(lastEventId, opts.after ?? lastEventId);
    const ready = () => queue.events().filter((e) => e.id > after);
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
        this.waiters.delete(waiter);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(events);
      };
      const waiter: Waiter = {
        queue,
        release: () => finish([]),
        wake: () => {
          this.advance(queue)
            .then(() => {
              const events = ready();
              if (events.length > 0 || queue.ended) finish(events);
            })
            .catch((err) => {
              this.logger.warn({ err, queueId }, 'advancing a waiting queue failed');
              finish([]);
            });
        },
      };
      const onAbort = () => finish([]);
      const timer = setTimeout(() => finish([]), holdMs);
      this.waiters.add(waiter);
      // Changes that arrived while this poll was advancing and persisting rang no waiter: look
      // once more now that it is registered, or they would wait for the next change or heartbeat.
      waiter.wake();
      opts.signal?.addEventListener('abort', onAbort);
      if (opts.signal?.aborted) onAbort();
    });
    if (events.length > 0) return events;
    return [{ type: 'heartbeat', id: Math.max(lastEventId, queue.lastEventId) }];
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
      if (used < cutoff) {
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

  /** Wakes and releases every waiting poll (shutdown). */
  close(): void {
    this.closing = true;
    for (const waiter of [...this.waiters]) waiter.release();
    this.waiters.clear();
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
    if (Date.now() - Number(row.last_access_at) > this.timing.idleTimeoutMs) {
      await this.drop(queueId);
      throw badQueue(queueId);
    }
    let queue = this.queues.get(queueId);
    if (!queue) {
      // Another node registered it, or this node restarted: rebuild it from its checkpoint. The
      // events it derives carry the same ids as those any node delivered before.
      queue = new EventQueue(
        queueId,
        userId,
        this.realmId,
        JSON.parse(row.options) as QueueOptions,
        {
          seq: Number(row.checkpoint_seq),
          nextEventId: Number(row.checkpoint_event_id),
          view: JSON.parse(row.checkpoint_view),
        },
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

  private async persist(queue: EventQueue): Promise<void> {
    const checkpoint = queue.cleanCheckpoint();
    const now = Date.now();
    let q = this.store.db.updateTable('event_queues').set({ last_access_at: now }).where('id', '=', queue.id);
    if (checkpoint) {
      // Checkpoints only move forward, whichever node writes them.
      q = this.store.db
        .updateTable('event_queues')
        .set({
          last_access_at: now,
          checkpoint_seq: checkpoint.seq,
          checkpoint_event_id: checkpoint.nextEventId,
          checkpoint_view: JSON.stringify(checkpoint.view),
        })
        .where('id', '=', queue.id)
        .where('checkpoint_seq', '<=', checkpoint.seq);
    }
    const result = await q.executeTakeFirst();
    if (checkpoint && Number(result.numUpdatedRows) === 0) {
      await this.store.db
        .updateTable('event_queues')
        .set({ last_access_at: now })
        .where('id', '=', queue.id)
        .execute();
    }
  }

  private async drop(queueId: string): Promise<void> {
    this.queues.delete(queueId);
    this.lastUsed.delete(queueId);
    await this.store.db.deleteFrom('event_queues').where('id', '=', queueId).execute();
  }
}
