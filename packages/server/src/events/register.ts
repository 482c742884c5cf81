import { limits } from '../domain/validation.js';
import { FEATURE_LEVEL, ZULIP_VERSION } from '../http/version.js';
import type { QueueOptions } from './queue.js';
import type { QueueService } from './queueService.js';
import { supportedEventTypes } from './snapshot.js';

/** What a client asks for at register. */
export interface RegisterRequest {
  eventTypes: string[] | null;
  fetchEventTypes: string[] | null;
  includeSubscribers: boolean;
  /** `client_capabilities.archived_channels`. */
  archivedChannels?: boolean;
}

/**
 * Registers a queue and builds Zulip's register response: the initial state of the requested
 * types and the queue that continues from exactly that state. Returns the response body and the
 * log position it reflects.
 */
export async function register(
  queues: QueueService,
  userId: number,
  req: RegisterRequest,
  longpollSeconds: number,
): Promise<{ body: Record<string, unknown>; seq: number }> {
  const fetch = req.fetchEventTypes ?? req.eventTypes ?? [...supportedEventTypes];
  const options: QueueOptions = {
    eventTypes: req.eventTypes,
    includeSubscribers: req.includeSubscribers,
    ...(req.archivedChannels ? { archivedChannels: true } : {}),
  };
  const { queueId, snapshot } = await queues.register(userId, options, fetch);
  const body: Record<string, unknown> = {
    queue_id: queueId,
    last_event_id: -1,
    zulip_feature_level: FEATURE_LEVEL,
    zulip_version: ZULIP_VERSION,
    zulip_merge_base: ZULIP_VERSION,
    event_queue_longpoll_timeout_seconds: longpollSeconds,
    ...snapshot.state,
  };
  if (fetch.includes('realm_user')) body.user_id = userId;
  if (fetch.includes('stream') || fetch.includes('subscription')) {
    body.max_stream_name_length = limits.streamName;
    body.max_stream_description_length = limits.streamDescription;
  }
  return { body, seq: snapshot.seq };
}
