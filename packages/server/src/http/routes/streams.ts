import type { FastifyInstance } from 'fastify';
import { archiveStream } from '../../domain/streams/archiveStream.js';
import { listStreams, subscriberCounts } from '../../domain/streams/streamQueries.js';
import {
  canAccessStream,
  findStreamByName,
  isSubscribed,
  loadAccessibleStream,
} from '../../domain/streams/streamRecord.js';
import { updateStream } from '../../domain/streams/updateStream.js';

import { fail } from '../../errors.js';
import type { AppContext } from '../context.js';
import { param, parseParams } from '../params.js';
import { presentStream } from '../presenters/stream.js';
import { pathId, success } from '../reply.js';
import { requireUser } from '../requireUser.js';

/** Zulip's channel ("stream") endpoints: list, get, get_stream_id, update, archive, members. */
export function streamRoutes(http: FastifyInstance, app: AppContext): void {
  const auth = { preHandler: requireUser(app) };

  http.get('/api/v1/streams', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      include_public: param.bool().optional(),
      include_web_public: param.bool().optional(),
      include_subscribed: param.bool().optional(),
      exclude_archived: param.bool().optional(),
      include_all_active: param.bool().optional(),
      include_all: param.bool().optional(),
      include_default: param.bool().optional(),
      include_owner_subscribed: param.bool().optional(),
      include_can_access_content: param.bool().optional(),
    });
    const views = await listStreams(app.store.db, req.user, {
      includePublic: params.include_public ?? true,
      includeSubscribed: params.include_subscribed ?? true,
      includeAllActive: params.include_all_active ?? params.include_all ?? false,
      includeArchived: params.exclude_archived === false,
    });
    return success(reply, { streams: views.map((v) => presentStream(v.stream, v.subscriberCount)) }, ignored);
  });

  http.get<{ Params: { stream_id: string } }>('/api/v1/streams/:stream_id', auth, async (req, reply) => {
    const streamId = pathId(req.params, 'stream_id');
    const { ignored } = parseParams(req, {});
    const stream = await loadAccessibleStream(app.store.db, req.user, streamId);
    const counts = await subscriberCounts(app.store.db, app.realmId, stream.id);
    return success(reply, { stream: presentStream(stream, counts.get(stream.id) ?? 0) }, ignored);
  });

  http.get('/api/v1/get_stream_id', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, { stream: param.string(1000) });
    const stream = await findStreamByName(app.store.db, app.realmId, params.stream);
    if (
      !stream ||
      !canAccessStream(req.user, stream, await isSubscribed(app.store.db, req.user.id, stream.id))
    )
      throw fail.badRequest(`Invalid channel name '${params.stream}'`);
    return success(reply, { stream_id: stream.id }, ignored);
  });

  http.patch<{ Params: { stream_id: string } }>('/api/v1/streams/:stream_id', auth, async (req, reply) => {
    const streamId = pathId(req.params, 'stream_id');
    const { params, ignored } = parseParams(req, {
      description: param.string(100_000).optional(),
      new_name: param.string(1000).optional(),
      is_private: param.bool().optional(),
      history_public_to_subscribers: param.bool().optional(),
    });
    await app.log.run(app.realmId, (ctx) =>
      updateStream(ctx, req.user, streamId, {
        newName: params.new_name,
        description: params.description,
        isPrivate: params.is_private,
        historyPublicToSubscribers: params.history_public_to_subscribers,
      }),
    );
    return success(reply, {}, ignored);
  });

  http.delete<{ Params: { stream_id: string } }>('/api/v1/streams/:stream_id', auth, async (req, reply) => {
    const streamId = pathId(req.params, 'stream_id');
    const { ignored } = parseParams(req, {});
    await app.log.run(app.realmId, (ctx) => archiveStream(ctx, req.user, streamId));
    return success(reply, {}, ignored);
  });

  http.get<{ Params: { stream_id: string } }>(
    '/api/v1/streams/:stream_id/members',
    auth,
    async (req, reply) => {
      const streamId = pathId(req.params, 'stream_id');
      const { ignored } = parseParams(req, {});
      const stream = await loadAccessibleStream(app.store.db, req.user, streamId);
      return success(reply, { subscribers: [...(await app.reads.subscribers(stream.id))] }, ignored);
    },
  );
}
