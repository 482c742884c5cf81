import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { Checkpoint, EventQueue } from './queue.js';

/** Serialized subscription lists, by the (shared, never mutated) set they came from. */
const listJson = new WeakMap<object, string>();

/** The checkpoint's view and last real event id, as stored in `checkpoint_view`. */
function storedJson(c: Checkpoint): string {
  const { userId, role, subscribed } = c.view;
  let list = c.source ? listJson.get(c.source) : undefined;
  if (list === undefined) {
    list = JSON.stringify(subscribed);
    if (c.source) listJson.set(c.source, list);
  }
  return `{"userId":${userId},"role":${role},"subscribed":${list},"lastRealEventId":${c.lastRealEventId ?? 'null'}}`;
}

/** Rows per statement: 5 parameters each stays far below SQLite's and PostgreSQL's limits. */
const CHUNK = 1000;

/**
 * Writes queue positions (last access and, when every derived event is acknowledged, the
 * checkpoint) in batches: one statement for every queue touched since the last write, run after
 * delivery instead of one statement per queue and delivery. Delaying a checkpoint never loses an
 * event: a queue rebuilt from an older checkpoint derives the same events with the same ids, and
 * drops those the client acknowledges again. Only heartbeat ids must be written before they are
 * sent (see {@link CheckpointWriter.flush}).
 */
export class CheckpointWriter {
  private dirty = new Map<string, { queue: EventQueue; at: number }>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    /**
     * How long touched queues wait to be written together (ms): a burst of changes and acks
     * (5,000 clients acknowledging one change) becomes one write per queue, not one per ack.
     */
    private readonly delayMs = 1000,
    /** Last access alone is written at most this often per queue (expiry needs no more). */
    private readonly accessEveryMs = 30_000,
  ) {}

  /** Records that `queue` was used now and may have a new checkpoint; written with the next batch. */
  touch(queue: EventQueue, at = Date.now()): void {
    this.dirty.set(queue.id, { queue, at });
    this.timer ??= setTimeout(() => this.flush().catch(() => {}), this.delayMs);
  }

  /** Forgets a deleted queue. */
  forget(queueId: string): void {
    this.dirty.delete(queueId);
  }

  /**
   * Writes everything touched so far; resolves once it is committed, rejects if it failed (the
   * rows are queued again).
   */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = [...this.dirty.values()];
    this.dirty.clear();
    const done = this.running.then(() => this.write(batch));
    this.running = done.catch(() => {});
    return done;
  }

  /** Stops the timer after writing what is left (shutdown). */
  async close(): Promise<void> {
    await this.flush().catch(() => {});
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async write(batch: { queue: EventQueue; at: number }[]): Promise<void> {
    for (let i = 0; i < batch.length; i += CHUNK) {
      const rows: { id: string; at: number; checkpoint: Checkpoint | null; queue: EventQueue }[] = [];
      for (const { queue, at } of batch.slice(i, i + CHUNK)) {
        let checkpoint = queue.cleanCheckpoint();
        const w = queue.written;
        if (checkpoint && checkpoint.seq === w.seq && checkpoint.nextEventId === w.nextEventId)
          checkpoint = null;
        if (!checkpoint && at - queue.accessWrittenAt < this.accessEveryMs) continue;
        rows.push({ id: queue.id, at, checkpoint, queue });
      }
      try {
        await this.update(rows);
        // Recorded once committed, so that a failed write is retried in full.
        for (const { queue, at, checkpoint } of rows) {
          if (checkpoint) queue.written = { seq: checkpoint.seq, nextEventId: checkpoint.nextEventId };
          queue.accessWrittenAt = at;
        }
      } catch (err) {
        this.logger.warn({ err, queues: rows.length }, 'writing event queue checkpoints failed; retrying');
        // This chunk and the ones after it go again with the next batch.
        for (const { queue, at } of batch.slice(i))
          if (!this.dirty.has(queue.id)) this.dirty.set(queue.id, { queue, at });
        this.timer ??= setTimeout(() => this.flush().catch(() => {}), 1000);
        throw err;
      }
    }
  }

  /**
   * One UPDATE for all rows, the same SQL on both backends (VALUES columns are named column1..5 on
   * SQLite and PostgreSQL alike). A checkpoint only moves forward — by log position, then by next
   * event id (heartbeats move it at one position) — whichever node writes it; last access only
   * moves forward too.
   */
  private async update(rows: { id: string; at: number; checkpoint: Checkpoint | null }[]): Promise<void> {
    if (rows.length === 0) return;
    const values = sql.join(
      rows.map(
        ({ id, at, checkpoint: c }) =>
          sql`(CAST(${id} AS text), CAST(${at} AS bigint), CAST(${c?.seq ?? null} AS bigint), CAST(${
            c?.nextEventId ?? null
          } AS bigint), CAST(${c ? storedJson(c) : null} AS text))`,
      ),
    );
    const ahead = sql`v.column3 IS NOT NULL AND (v.column3 > event_queues.checkpoint_seq OR (v.column3 = event_queues.checkpoint_seq AND v.column4 >= event_queues.checkpoint_event_id))`;
    await sql`UPDATE event_queues SET
        last_access_at = CASE WHEN v.column2 > event_queues.last_access_at THEN v.column2 ELSE event_queues.last_access_at END,
        checkpoint_seq = CASE WHEN ${ahead} THEN v.column3 ELSE event_queues.checkpoint_seq END,
        checkpoint_event_id = CASE WHEN ${ahead} THEN v.column4 ELSE event_queues.checkpoint_event_id END,
        checkpoint_view = CASE WHEN ${ahead} THEN v.column5 ELSE event_queues.checkpoint_view END
      FROM (VALUES ${values}) AS v
      WHERE event_queues.id = v.column1`.execute(this.store.db);
  }
}
