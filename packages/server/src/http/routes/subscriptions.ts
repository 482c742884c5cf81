import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { findUserByApiEmail } from '../../auth/authenticate.js';
import { subscriberCounts } from '../../domain/streams/streamQueries.js';
import { isSubscribed, loadAccessibleStream } from '../../domain/streams/streamRecord.js';
import { subscribe } from '../../domain/subscriptions/subscribe.js';
import { listSubscriptions, subscribersOf } from '../../domain/subscriptions/subscriptionQueries.js';
import { unsubscribe } from '../../domain/subscriptions/unsubscribe.js';
import { getUser } from '../../domain/users/userQueries.js';
import { fail } from '../../errors.js';
import type { AppContext } from '../context.js';
import { param, parseParams } from '../params.js';
import { presentSubscription } from '../presenters/stream.js';
import { pathId, success } from '../reply.js';
import { requireUser } from '../requireUser.js';

// Ids are 32-bit in the database: PostgreSQL fails a larger one in a query instead of matching nothing.
const userId = z
  .number()
  .int()
  .positive()
  .max(2 ** 31 - 1);
const principalsSchema = z.array(z.union([userId, z.string().max(254)])).max(10_000);

/** Zulip's subscription endpoints. */
export function subscriptionRoutes(http: FastifyInstance, app: AppContext): void {
  const auth = { preHandler: requireUser(app) };

  /** Principals are user ids or API e-mails; every one must name a user of the realm. */
  async function resolvePrincipals(principals: (number | string)[] | undefined): Promise<number[]> {
    const ids: number[] = [];
    for (const [i, p] of (principals ?? []).entries()) {
      const user =
        typeof p === 'number'
          ? await getUser(app.store.db, app.realmId, p)
          : await findUserByApiEmail(app.store.db, app.realmId, p, app.present.host);
      if (!user) throw fail.noSuchUser(`principals[${i}] is ${JSON.stringify(p)}`);
      ids.push(user.id);
    }
    return ids;
  }

  http.get('/api/v1/users/me/subscriptions', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      include_subscribers: param.oneOf('true', 'false', 'partial').optional(),
    });
    const views = await listSubscriptions(app.store.db, req.user.id);
    const ids = views.map((v) => v.stream.id);
    const members =
      params.include_subscribers && params.include_subscribers !== 'false'
        ? await subscribersOf(app.store.db, ids)
        : null;
    const counts = await subscriberCounts(app.store.db, app.realmId);
    const subscriptions = views.map((v) =>
      presentSubscription(v.subscription, v.stream, members?.get(v.stream.id), counts.get(v.stream.id) ?? 0),
    );
    return success(reply, { subscriptions }, ignored);
  });

  http.post('/api/v1/users/me/subscriptions', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      subscriptions: param.json(
        z
          .array(z.object({ name: z.string().max(1000), description: z.string().max(100_000).optional() }))
          .min(1)
          .max(1000),
      ),
      principals: param.json(principalsSchema).optional(),
      authorization_errors_fatal: param.bool().optional(),
      announce: param.bool().optional(),
      invite_only: param.bool().optional(),
      is_web_public: param.bool().optional(),
      history_public_to_subscribers: param.bool().optional(),
      send_new_subscription_messages: param.bool().optional(),
    });
    const principals = await resolvePrincipals(params.principals);
    const { value } = await app.log.run(app.realmId, (ctx) =>
      subscribe(ctx, req.user, {
        streams: params.subscriptions,
        principals,
        inviteOnly: params.invite_only,
        historyPublicToSubscribers: params.history_public_to_subscribers,
        authorizationErrorsFatal: params.authorization_errors_fatal,
      }),
    );
    const body: Record<string, unknown> = {
      subscribed: Object.fromEntries(value.subscribed),
      already_subscribed: Object.fromEntries(value.alreadySubscribed),
    };
    if (value.unauthorized.length > 0) body.unauthorized = value.unauthorized;
    return success(reply, body, ignored);
  });

  http.delete('/api/v1/users/me/subscriptions', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      subscriptions: param.json(z.array(z.string().max(1000)).min(1).max(1000)),
      principals: param.json(principalsSchema).optional(),
    });
    const principals = await resolvePrincipals(params.principals);
    const { value } = await app.log.run(app.realmId, (ctx) =>
      unsubscribe(ctx, req.user, { streamNames: params.subscriptions, principals }),
    );
    return success(reply, { removed: value.removed, not_removed: value.notRemoved }, ignored);
  });

  http.get<{ Params: { user_id: string; stream_id: string } }>(
    '/api/v1/users/:user_id/subscriptions/:stream_id',
    auth,
    async (req, reply) => {
      const userId = pathId(req.params, 'user_id');
      const streamId = pathId(req.params, 'stream_id');
      const { ignored } = parseParams(req, {});
      if (!(await getUser(app.store.db, app.realmId, userId))) throw fail.noSuchUser(`user_id ${userId}`);
      await loadAccessibleStream(app.store.db, req.user, streamId);
      return success(reply, { is_subscribed: await isSubscribed(app.store.db, userId, streamId) }, ignored);
    },
  );
}
