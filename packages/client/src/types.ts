import { z } from 'zod';

/** A user as the client keeps it (Zulip's `User`; `is_active` always present). */
export const userSchema = z
  .object({
    user_id: z.number().int(),
    email: z.string(),
    delivery_email: z.string().nullable().optional(),
    full_name: z.string(),
    role: z.number().int(),
    is_active: z.boolean().optional(),
    is_admin: z.boolean().optional(),
    is_owner: z.boolean().optional(),
    is_guest: z.boolean().optional(),
    is_bot: z.boolean().optional(),
    avatar_url: z.string().nullable().optional(),
    avatar_version: z.number().int().optional(),
  })
  .loose();
export interface User {
  user_id: number;
  email: string;
  /** The real address, where the viewer may see it; `email` may be a placeholder. */
  delivery_email?: string | null;
  full_name: string;
  role: number;
  is_active: boolean;
  avatar_url?: string | null;
  avatar_version?: number;
  [key: string]: unknown;
}

/** A channel (Zulip's `BasicChannel`). */
export const streamSchema = z
  .object({
    stream_id: z.number().int(),
    name: z.string(),
    description: z.string(),
    invite_only: z.boolean(),
    is_archived: z.boolean().optional(),
    subscriber_count: z.number().optional(),
  })
  .loose();
export interface Stream {
  stream_id: number;
  name: string;
  description: string;
  invite_only: boolean;
  subscriber_count?: number;
  [key: string]: unknown;
}

/** One of the user's subscriptions (Zulip's `Subscription`, without its subscriber list). */
export const subscriptionSchema = streamSchema.extend({
  color: z.string(),
  is_muted: z.boolean().optional(),
  subscribers: z.array(z.number().int()).optional(),
});
export interface Subscription extends Stream {
  color: string;
}

/** The parts of a register response the client understands. */
export const registerResponseSchema = z
  .object({
    queue_id: z.string().nullable(),
    last_event_id: z.number().int(),
    zulip_feature_level: z.number().int(),
    user_id: z.number().int().optional(),
    realm_users: z.array(userSchema).optional(),
    realm_non_active_users: z.array(userSchema).optional(),
    streams: z.array(streamSchema).optional(),
    subscriptions: z.array(subscriptionSchema).optional(),
    unsubscribed: z.array(subscriptionSchema).optional(),
    never_subscribed: z
      .array(streamSchema.extend({ subscribers: z.array(z.number().int()).optional() }))
      .optional(),
  })
  .loose();
export interface RegisterResponse {
  queue_id: string | null;
  last_event_id: number;
  zulip_feature_level: number;
  user_id?: number;
  realm_users?: User[];
  realm_non_active_users?: User[];
  streams?: Stream[];
  subscriptions?: (Subscription & { subscribers?: number[] })[];
  unsubscribed?: (Subscription & { subscribers?: number[] })[];
  never_subscribed?: (Stream & { subscribers?: number[] })[];
  [key: string]: unknown;
}

/** An event from GET /events; the reducer understands the user, channel and subscription ones. */
export const eventSchema = z
  .object({ id: z.number().int(), type: z.string(), op: z.string().optional() })
  .loose();
export interface ZulipEvent {
  id: number;
  type: string;
  op?: string;
  [key: string]: unknown;
}
