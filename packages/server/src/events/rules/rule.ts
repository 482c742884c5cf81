import type { Change, ChangeKind } from '../../changelog/change.js';
import type { PresentContext } from '../../http/presenters/user.js';
import type { RecipientView } from '../view.js';

/** A Zulip event as delivered, before the queue gives it an id. */
export type ZulipEvent = { type: string; op?: string } & Record<string, unknown>;

/** What a rule knows besides the change: the recipient's view (which it may update) and settings. */
export interface RuleContext {
  view: RecipientView;
  realmId: number;
  present: PresentContext;
  /** The queue registered with `include_subscribers`: subscription objects carry subscriber lists. */
  includeSubscribers: boolean;
  /** The client declared `archived_channels`: archiving is a `stream` update, not a delete. */
  archivedChannels: boolean;
}

/** The events one change yields for one recipient, and whether the recipient's queue ends after them. */
export interface RuleResult {
  events: ZulipEvent[];
  /** Set when the recipient must re-register (their own role or account changed). */
  end?: string;
}

/** Turns one change into the events one recipient may see. Pure apart from updating `ctx.view`. */
export type Rule<K extends ChangeKind> = (
  change: Extract<Change, { kind: K }>,
  ctx: RuleContext,
) => RuleResult;

export const none: RuleResult = { events: [] };
