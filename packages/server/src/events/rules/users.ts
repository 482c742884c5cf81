import { presentLoggedUser } from '../present.js';
import { canSee } from '../view.js';
import type { StreamRef } from '../../changelog/change.js';
import type { Rule, RuleContext, ZulipEvent } from './rule.js';
import { none } from './rule.js';
import { avatarUrl } from '../../http/presenters/user.js';

/** The channels whose members the recipient sees: archived ones only with `archived_channels`. */
const shown = (streams: readonly StreamRef[], ctx: RuleContext) =>
  streams.filter((s) => (!s.archived || ctx.archivedChannels) && canSee(ctx.view, s));

/** Every user sees every user: a new user is `realm_user` `add` for all. */
export const userCreated: Rule<'user.created'> = (change, ctx) => ({
  events: [
    {
      type: 'realm_user',
      op: 'add',
      person: presentLoggedUser(ctx.present, change.payload.user, ctx.realmId),
    },
  ],
});

/**
 * One `realm_user` `update` per changed field, in Zulip's single-change shapes. A change of the
 * recipient's own role changes what they may see, so their queue ends and they re-register.
 */
export const userUpdated: Rule<'user.updated'> = (change, ctx) => {
  const { userId, field, value } = change.payload;
  let person: Record<string, unknown>;
  switch (field) {
    case 'full_name':
      person = { user_id: userId, full_name: value };
      break;
    case 'role':
      person = { user_id: userId, role: value };
      break;
    case 'avatar_version':
      person = {
        user_id: userId,
        avatar_url: avatarUrl(ctx.present, { id: userId, avatar_version: Number(value) }),
        avatar_source: 'U',
        avatar_url_medium: avatarUrl(ctx.present, { id: userId, avatar_version: Number(value) }),
        avatar_version: value,
      };
      break;
    case 'delivery_email':
      person = { user_id: userId, delivery_email: value };
      break;
    case 'timezone':
      person = { user_id: userId, timezone: value };
      break;
  }
  const events: ZulipEvent[] = [{ type: 'realm_user', op: 'update', person }];
  if (field === 'role' && userId === ctx.view.userId) return { events, end: 'own role changed' };
  return { events };
};

/**
 * Deactivation: first `peer_remove` for every channel the user was in whose subscribers the
 * recipient may see (incident 3: member lists must lose them), then `realm_user` `update`
 * `is_active: false`. The user's own queues end.
 */
export const userDeactivated: Rule<'user.deactivated'> = (change, ctx) => {
  const { userId, streams } = change.payload;
  const events: ZulipEvent[] = [];
  const visible = shown(streams, ctx).map((s) => s.id);
  if (visible.length > 0)
    events.push({ type: 'subscription', op: 'peer_remove', stream_ids: visible, user_ids: [userId] });
  events.push({ type: 'realm_user', op: 'update', person: { user_id: userId, is_active: false } });
  if (userId === ctx.view.userId) return { events, end: 'account deactivated' };
  return { events };
};

/** Reactivation: `realm_user` `update` `is_active: true`, then `peer_add` for their visible channels. */
export const userReactivated: Rule<'user.reactivated'> = (change, ctx) => {
  const { userId, streams } = change.payload;
  const events: ZulipEvent[] = [
    { type: 'realm_user', op: 'update', person: { user_id: userId, is_active: true } },
  ];
  const visible = shown(streams, ctx).map((s) => s.id);
  if (visible.length > 0)
    events.push({ type: 'subscription', op: 'peer_add', stream_ids: visible, user_ids: [userId] });
  return { events };
};

/** A new API key is nobody's event. */
export const credentialsChanged: Rule<'user.credentials_changed'> = () => none;

/** The realm's creation precedes every queue. */
export const realmCreated: Rule<'realm.created'> = () => none;
