import type { StreamRef } from '../changelog/change.js';
import { isAdmin, isGuest } from '../domain/roles.js';

/**
 * What decides which events a queue's user receives: who they are, their role, and the channels
 * they are subscribed to. A queue carries its view forward change by change, so the events it
 * derives depend only on the log and the view at registration — any node derives the same.
 */
export interface RecipientView {
  userId: number;
  role: number;
  subscribed: Set<number>;
}

/**
 * Whether the recipient may see a channel and its subscribers: subscribers always; private
 * channels also administrators; public ones everyone but guests. Mirrors `canAccessStream`.
 */
export function canSee(view: RecipientView, stream: StreamRef): boolean {
  if (view.subscribed.has(stream.id)) return true;
  if (isGuest(view.role)) return false;
  return !stream.inviteOnly || isAdmin(view.role);
}

/** The view as stored with a queue checkpoint. */
export interface StoredView {
  userId: number;
  role: number;
  subscribed: number[];
}

export const storeView = (v: RecipientView): StoredView => ({
  userId: v.userId,
  role: v.role,
  subscribed: [...v.subscribed].sort((a, b) => a - b),
});

export const loadView = (v: StoredView): RecipientView => ({
  userId: v.userId,
  role: v.role,
  subscribed: new Set(v.subscribed),
});

/**
 * A key equal for two views exactly when every rule derives the same events and the same next
 * subscriptions from them: recipients with equal keys share one derivation per change.
 */
export const viewKey = (v: RecipientView, subscribed = subscribedKey(v.subscribed)): string =>
  `${v.userId}:${v.role}:${subscribed}`;

/** The subscriptions part of {@link viewKey}. */
export const subscribedKey = (s: ReadonlySet<number>): string => [...s].sort((a, b) => a - b).join(',');
