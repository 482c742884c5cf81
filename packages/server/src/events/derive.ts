import type { Change } from '../changelog/change.js';
import type { PresentContext } from '../http/presenters/user.js';
import type { QueueOptions } from './queue.js';
import { eventsFor } from './rules/index.js';
import type { ZulipEvent } from './rules/rule.js';
import type { RecipientView } from './view.js';

/** An event derived once for every queue that shares a view, serialized once (without its id). */
export interface SharedEvent {
  event: ZulipEvent;
  /** `JSON.stringify(event)`: queues splice their own id in instead of serializing again. */
  json: string;
  /** The derivation it came from, whose frames are shared by the queues that got all of it. */
  batch: Derivation;
}

/**
 * The events a run of consecutive changes yields for one view and one set of queue options, and
 * where it leaves the view. Shared, never mutated after it is built: every queue with that view
 * and those options at that log position takes the same events and the same next `subscribed`.
 */
export interface Derivation {
  /** The last change derived. */
  upTo: number;
  events: SharedEvent[];
  /** The view's subscriptions after the changes (a new set when any rule changed them). */
  subscribed: ReadonlySet<number>;
  /** Why the queue ends, if one of the changes ends it. */
  end: string | null;
  /** Encoded frames of exactly these events, by transport and first event id. */
  frames: Map<string, string | Buffer>;
}

/** Options that change what a rule derives or which events a queue keeps: part of a sharing key. */
export const optionsKey = (o: QueueOptions): string =>
  `${o.eventTypes ? o.eventTypes.join(',') : '*'}|${o.includeSubscribers ? 1 : 0}|${o.archivedChannels ? 1 : 0}`;

/**
 * Derives `changes` (consecutive, after `cursor`) for `view` without touching it: the rules work
 * on a copy, so a shared view is never changed under the queues that hold it.
 */
export function derive(
  changes: readonly Change[],
  from: { cursor: number; currentView: RecipientView; options: QueueOptions; ended: string | null },
  realmId: number,
  present: PresentContext,
): Derivation {
  const view: RecipientView = { ...from.currentView, subscribed: new Set(from.currentView.subscribed) };
  const d: Derivation = {
    upTo: from.cursor,
    events: [],
    subscribed: view.subscribed,
    end: from.ended,
    frames: new Map(),
  };
  const types = from.options.eventTypes;
  for (const change of changes) {
    if (change.seq <= d.upTo) continue;
    if (change.seq !== d.upTo + 1) throw new Error(`change ${change.seq} does not follow ${d.upTo}`);
    d.upTo = change.seq;
    if (d.end) continue;
    const result = eventsFor(change, {
      view,
      realmId,
      present,
      includeSubscribers: from.options.includeSubscribers,
      archivedChannels: from.options.archivedChannels ?? false,
    });
    for (const event of result.events) {
      if (types && !types.includes(event.type)) continue;
      d.events.push({ event, json: JSON.stringify(event), batch: d });
    }
    if (result.end) d.end = result.end;
  }
  return d;
}
