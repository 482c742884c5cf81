import type { Change } from '../changelog/change.js';
import type { PresentContext } from '../http/presenters/user.js';
import { eventsFor } from './rules/index.js';
import type { ZulipEvent } from './rules/rule.js';
import type { RecipientView, StoredView } from './view.js';
import { loadView, storeView } from './view.js';

/** What a client asked for at register. */
export interface QueueOptions {
  /** Event types to deliver; null for all. */
  eventTypes: string[] | null;
  includeSubscribers: boolean;
}

/** A queue's durable state: enough to derive every event after it, identically on any node. */
export interface Checkpoint {
  seq: number;
  nextEventId: number;
  view: StoredView;
}

/** An event with its queue id, as delivered. */
export type QueuedEvent = ZulipEvent & { id: number };

/**
 * One client's event queue, derived from the change log. Events get consecutive ids in the order
 * of the changes that caused them; unacknowledged events stay pending. Deterministic: the same
 * checkpoint and the same changes yield the same events with the same ids.
 */
export class EventQueue {
  private seq: number;
  private nextId: number;
  private view: RecipientView;
  private pending: QueuedEvent[] = [];
  /** The highest id the client has acknowledged; older events are gone for good. */
  private acked: number;
  /** Why the queue ended, once an event that ends it has been derived. */
  ended: string | null = null;

  constructor(
    readonly id: string,
    readonly userId: number,
    readonly realmId: number,
    readonly options: QueueOptions,
    checkpoint: Checkpoint,
    private readonly present: PresentContext,
  ) {
    this.seq = checkpoint.seq;
    this.nextId = checkpoint.nextEventId;
    this.view = loadView(checkpoint.view);
    this.acked = checkpoint.nextEventId - 1;
  }

  /** The highest event id acknowledged so far. */
  get acknowledged(): number {
    return this.acked;
  }

  /** The log position derived so far. */
  get cursor(): number {
    return this.seq;
  }

  /** The id of the newest derived event (or of the checkpoint's last one). */
  get lastEventId(): number {
    return this.nextId - 1;
  }

  /** Derives the events of `changes` (consecutive, starting right after the cursor). */
  advance(changes: readonly Change[]): void {
    for (const change of changes) {
      if (change.seq <= this.seq) continue;
      if (change.seq !== this.seq + 1)
        throw new Error(`queue ${this.id}: change ${change.seq} does not follow ${this.seq}`);
      this.seq = change.seq;
      if (this.ended) continue;
      const result = eventsFor(change, {
        view: this.view,
        realmId: this.realmId,
        present: this.present,
        includeSubscribers: this.options.includeSubscribers,
      });
      for (const event of result.events) {
        if (this.options.eventTypes && !this.options.eventTypes.includes(event.type)) continue;
        this.pending.push({ ...event, id: this.nextId++ });
      }
      if (result.end) this.ended = result.end;
    }
  }

  /** Drops the events the client has acknowledged (ids up to `lastEventId`). */
  acknowledge(lastEventId: number): void {
    this.acked = Math.max(this.acked, Math.min(lastEventId, this.nextId - 1));
    if (this.pending.length > 0 && this.pending[0]!.id <= lastEventId) {
      this.pending = this.pending.filter((e) => e.id > lastEventId);
    }
  }

  /** The events not yet acknowledged. */
  events(): QueuedEvent[] {
    return this.pending;
  }

  /**
   * The checkpoint to persist, when every derived event is acknowledged (so that rebuilding from
   * it cannot lose an event the client has not seen); null otherwise.
   */
  cleanCheckpoint(): Checkpoint | null {
    if (this.pending.length > 0) return null;
    return { seq: this.seq, nextEventId: this.nextId, view: storeView(this.view) };
  }
}
