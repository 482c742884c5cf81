import type { Change } from '../changelog/change.js';
import type { PresentContext } from '../http/presenters/user.js';
import type { Derivation, SharedEvent } from './derive.js';
import { derive } from './derive.js';
import type { ZulipEvent } from './rules/rule.js';
import type { RecipientView, StoredView } from './view.js';
import { loadView, storeView } from './view.js';

/** What a client asked for at register. */
export interface QueueOptions {
  /** Event types to deliver; null for all. */
  eventTypes: string[] | null;
  includeSubscribers: boolean;
  /** The `archived_channels` client capability (absent in queues registered before it existed). */
  archivedChannels?: boolean;
}

/** A queue's durable state: enough to derive every event after it, identically on any node. */
export interface Checkpoint {
  seq: number;
  nextEventId: number;
  view: StoredView;
  /**
   * The id of the newest real (not heartbeat) event before the checkpoint: a client may resume from
   * it or later. Absent in checkpoints written before heartbeats took ids: `nextEventId - 1`.
   */
  lastRealEventId?: number;
  /** The in-memory subscription set the view was stored from (to reuse its serialization). */
  source?: ReadonlySet<number>;
}

/** An event with its queue id, as delivered. */
export type QueuedEvent = ZulipEvent & { id: number };

/** A derived event not yet acknowledged: its queue id and the event, shared with other queues. */
export interface PendingEvent {
  id: number;
  shared: SharedEvent;
}

/**
 * One client's event queue, derived from the change log. Events get consecutive ids in the order
 * of the changes that caused them; unacknowledged events stay pending. Deterministic: the same
 * checkpoint and the same changes yield the same events with the same ids, on any node.
 */
export class EventQueue {
  private seq: number;
  private nextId: number;
  private view: RecipientView;
  private pending: PendingEvent[] = [];
  /** The highest id the client has acknowledged. */
  private acked: number;
  /** The id of the newest real event derived (heartbeats take ids too). */
  private lastReal: number;
  /** The newest real event acknowledged: it and older ones are gone for good. */
  private floor: number;
  /** Why the queue ended, once an event that ends it has been derived. */
  ended: string | null = null;
  /**
   * The newest checkpoint this node has written or queued for writing, as (seq, next id): a row
   * ahead of it was written by another node, and this copy must be rebuilt from the row.
   */
  written: { seq: number; nextEventId: number };
  /** When this node last wrote the queue's last access (0: never). */
  accessWrittenAt = 0;

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
    this.lastReal = checkpoint.lastRealEventId ?? checkpoint.nextEventId - 1;
    this.floor = this.lastReal;
    this.written = { seq: checkpoint.seq, nextEventId: checkpoint.nextEventId };
  }

  /** The newest real event acknowledged: a client resuming from an older id has lost events. */
  get acknowledged(): number {
    return this.floor;
  }

  /** The log position derived so far. */
  get cursor(): number {
    return this.seq;
  }

  /** The id of the newest derived event (or of the checkpoint's last one). */
  get lastEventId(): number {
    return this.nextId - 1;
  }

  /** What decides this queue's events besides the log: its view. Never mutate it. */
  get currentView(): RecipientView {
    return this.view;
  }

  /** Derives the events of `changes` (consecutive, starting right after the cursor). */
  advance(changes: readonly Change[]): void {
    this.take(derive(changes, this, this.realmId, this.present));
  }

  /**
   * Takes a derivation made for this queue's view, options and cursor (possibly shared with other
   * queues): its events get this queue's next ids. Returns the first id given.
   */
  take(d: Derivation): number {
    if (d.upTo <= this.seq) return this.nextId;
    const first = this.nextId;
    this.seq = d.upTo;
    if (d.subscribed !== this.view.subscribed)
      this.view = { userId: this.view.userId, role: this.view.role, subscribed: d.subscribed as Set<number> };
    for (const shared of d.events) this.pending.push({ id: this.nextId++, shared });
    if (d.events.length > 0) this.lastReal = this.nextId - 1;
    this.ended = d.end;
    return first;
  }

  /** Drops the events the client has acknowledged (ids up to `lastEventId`). */
  acknowledge(lastEventId: number): void {
    this.acked = Math.max(this.acked, Math.min(lastEventId, this.nextId - 1));
    if (this.pending.length > 0 && this.pending[0]!.id <= this.acked) {
      const kept = this.pending.filter((e) => e.id > this.acked);
      // Only real events are pending: the newest dropped one is the new floor.
      this.floor = Math.max(this.floor, this.pending[this.pending.length - kept.length - 1]!.id);
      this.pending = kept;
    }
  }

  /**
   * Takes the next id for a heartbeat (Zulip queues heartbeats like events, so ids never repeat).
   * Only when nothing is pending and the client has every real event this copy derived and none
   * it has not (another node may be ahead), so that the checkpoint moves with it; otherwise null
   * and the heartbeat repeats the last id. The caller persists the checkpoint before answering.
   */
  heartbeatId(lastEventId: number): number | null {
    if (this.pending.length > 0 || this.ended) return null;
    if (lastEventId < this.lastReal || lastEventId > this.nextId - 1) return null;
    return this.nextId++;
  }

  /** The events after `after` not yet acknowledged, as delivered. */
  events(after = this.acked): QueuedEvent[] {
    return this.pendingAfter(after).map((p) => ({ ...p.shared.event, id: p.id }));
  }

  /** The pending entries after `after`. */
  pendingAfter(after: number): PendingEvent[] {
    if (this.pending.length === 0 || this.pending[this.pending.length - 1]!.id <= after) return [];
    if (this.pending[0]!.id > after) return this.pending;
    return this.pending.filter((p) => p.id > after);
  }

  /**
   * The checkpoint to persist, when every derived event is acknowledged (so that rebuilding from
   * it cannot lose an event the client has not seen); null otherwise.
   */
  cleanCheckpoint(): Checkpoint | null {
    if (this.pending.length > 0) return null;
    return {
      seq: this.seq,
      nextEventId: this.nextId,
      view: storeView(this.view),
      lastRealEventId: this.lastReal,
      source: this.view.subscribed,
    };
  }
}
