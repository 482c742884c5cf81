import type { StreamRow, SubscriptionRow } from '../../store/schema.js';

/**
 * Concord has no user groups yet; permissions that Zulip expresses as group-setting values are
 * fixed by role and presented as Zulip's role-based system groups, with these stable ids.
 */
export const systemGroup = {
  nobody: 1,
  owners: 2,
  administrators: 3,
  moderators: 4,
  fullMembers: 5,
  members: 6,
  everyone: 7,
} as const;

/** Escapes a description for `rendered_description` (Concord does not render Markdown). */
function renderDescription(text: string): string {
  if (text === '') return '';
  const escaped = text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<p>${escaped}</p>`;
}

/** A channel as Zulip's `BasicChannel` object. */
export function presentStream(s: StreamRow, subscriberCount: number) {
  return {
    stream_id: s.id,
    name: s.name,
    is_archived: s.is_archived === 1,
    description: s.description,
    date_created: Math.floor(Number(s.date_created) / 1000),
    creator_id: s.creator_id,
    invite_only: s.invite_only === 1,
    rendered_description: renderDescription(s.description),
    is_web_public: false,
    stream_post_policy: 1,
    message_retention_days: null,
    history_public_to_subscribers: s.history_public_to_subscribers === 1,
    topics_policy: 'inherit',
    first_message_id: null,
    folder_id: null,
    is_recently_active: false,
    is_announcement_only: false,
    can_add_subscribers_group: systemGroup.members,
    can_remove_subscribers_group: systemGroup.administrators,
    can_administer_channel_group: systemGroup.administrators,
    can_delete_any_message_group: systemGroup.administrators,
    can_delete_own_message_group: systemGroup.everyone,
    can_move_messages_out_of_channel_group: systemGroup.administrators,
    can_move_messages_within_channel_group: systemGroup.members,
    can_send_message_group: systemGroup.everyone,
    can_subscribe_group: systemGroup.nobody,
    can_resolve_topics_group: systemGroup.members,
    subscriber_count: subscriberCount,
    stream_weekly_traffic: null,
  };
}

/** A subscription as Zulip's `Subscription` object. */
export function presentSubscription(
  sub: SubscriptionRow,
  s: StreamRow,
  subscribers: number[] | undefined,
  subscriberCount: number,
) {
  const base = presentStream(s, subscriberCount);
  return {
    ...base,
    color: sub.color,
    is_muted: sub.is_muted === 1,
    in_home_view: sub.is_muted === 0,
    pin_to_top: sub.pin_to_top === 1,
    desktop_notifications: null,
    audible_notifications: null,
    push_notifications: null,
    email_notifications: null,
    wildcard_mentions_notify: null,
    ...(subscribers ? { subscribers } : {}),
  };
}
