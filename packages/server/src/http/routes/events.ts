import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { register } from '../../events/register.js';
import type { AppContext } from '../context.js';
import { param, parseParams } from '../params.js';
import { success } from '../reply.js';
import { requireUser } from '../requireUser.js';

const typeList = z.array(z.string().max(100)).max(200);

/** POST /register, GET /events (long-poll) and DELETE /events. */
export function eventRoutes(http: FastifyInstance, app: AppContext): void {
  const auth = { preHandler: requireUser(app) };

  http.post('/api/v1/register', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      event_types: param.json(typeList).optional(),
      fetch_event_types: param.json(typeList).optional(),
      // Zulip documents a string enum; older clients send JSON booleans.
      include_subscribers: param.oneOf('true', 'false', 'partial').optional(),
      client_capabilities: param.json(z.record(z.string(), z.unknown())).optional(),
      client_gravatar: param.bool().optional(),
      apply_markdown: param.bool().optional(),
      slim_presence: param.bool().optional(),
      all_public_streams: param.bool().optional(),
      narrow: param.json(z.array(z.unknown())).optional(),
      presence_history_limit_days: param.int().optional(),
    });
    const { body, seq } = await register(
      app.queues,
      req.user.id,
      {
        eventTypes: params.event_types ?? null,
        fetchEventTypes: params.fetch_event_types ?? null,
        includeSubscribers:
          params.include_subscribers !== undefined && params.include_subscribers !== 'false',
        archivedChannels: params.client_capabilities?.archived_channels === true,
      },
      app.config.eventLongpollSeconds,
    );
    reply.header('X-Concord-Log-Position', String(seq));
    return success(reply, body, ignored);
  });

  http.get('/api/v1/events', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      queue_id: param.string(100),
      last_event_id: param.int().optional(),
      dont_block: param.bool().optional(),
    });
    const abort = new AbortController();
    // The response's 'close' fires when the client goes away before the answer (since Node 16 the
    // request's 'close' fires as soon as its body is read, which for a GET is at once).
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    const events = await app.queues.poll(params.queue_id, req.user.id, params.last_event_id ?? -1, {
      dontBlock: params.dont_block ?? false,
      signal: abort.signal,
    });
    return success(reply, { events, queue_id: params.queue_id }, ignored);
  });

  http.delete('/api/v1/events', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, { queue_id: param.string(100) });
    await app.queues.delete(params.queue_id, req.user.id);
    return success(reply, {}, ignored);
  });
}
