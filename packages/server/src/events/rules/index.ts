import type { Change, ChangeKind } from '../../changelog/change.js';
import type { Rule, RuleContext, RuleResult } from './rule.js';
import { none } from './rule.js';
import { jobUpdated } from './jobs.js';
import { streamArchived, streamCreated, streamUpdated } from './streams.js';
import { subscriptionAdded, subscriptionRemoved } from './subscriptions.js';
import {
  credentialsChanged,
  realmCreated,
  userCreated,
  userDeactivated,
  userReactivated,
  userUpdated,
} from './users.js';

/** The one place that turns each kind of change into client events. */
const rules: { [K in ChangeKind]: Rule<K> } = {
  'realm.created': realmCreated,
  'user.created': userCreated,
  'user.updated': userUpdated,
  'user.deactivated': userDeactivated,
  'user.reactivated': userReactivated,
  'user.credentials_changed': credentialsChanged,
  'stream.created': streamCreated,
  'stream.updated': streamUpdated,
  'stream.archived': streamArchived,
  'subscription.added': subscriptionAdded,
  'subscription.removed': subscriptionRemoved,
  'job.updated': jobUpdated,
};

/** The events `change` yields for the recipient of `ctx` (whose view it updates). */
export function eventsFor(change: Change, ctx: RuleContext): RuleResult {
  return ((rules[change.kind] as Rule<ChangeKind> | undefined) ?? (() => none))(change as never, ctx);
}
