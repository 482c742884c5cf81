import { isAdmin } from '../../domain/roles.js';
import type { Rule } from './rule.js';
import { none } from './rule.js';

/**
 * Concord's own event (no Zulip equivalent): a background job's derived status, to organization
 * administrators and owners only — directory syncs show their live state in the UI. Zulip clients
 * ignore event types they do not know; Concord's web client asks for it by name.
 */
export const jobUpdated: Rule<'job.updated'> = (change, ctx) =>
  isAdmin(ctx.view.role)
    ? { events: [{ type: 'concord_job', op: 'update', job: change.payload.job }] }
    : none;
