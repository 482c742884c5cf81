import type { FastifyInstance } from 'fastify';
import { lookupUserByApiEmail } from '../../auth/authenticate.js';
import { createUser } from '../../domain/users/createUser.js';
import { deactivateUser } from '../../domain/users/deactivateUser.js';
import { reactivateUser } from '../../domain/users/reactivateUser.js';
import { updateUser } from '../../domain/users/updateUser.js';
import { fail } from '../../errors.js';
import type { AppContext } from '../context.js';
import { param, parseParams } from '../params.js';
import { presentOwnUser, presentUser, presentUserResponse } from '../presenters/user.js';
import { pathId, success } from '../reply.js';
import { requireUser } from '../requireUser.js';

const JSON_UTF8 = 'application/json; charset=utf-8';

/** Zulip's users endpoints: list, get (by id, e-mail, me), create, update, deactivate, reactivate. */
export function userRoutes(http: FastifyInstance, app: AppContext): void {
  const auth = { preHandler: requireUser(app) };
  const common = {
    client_gravatar: param.bool().optional(),
    include_custom_profile_fields: param.bool().optional(),
  };

  http.get('/api/v1/users', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, { ...common, user_ids: param.intList().optional() });
    const all = await app.reads.users();
    const wanted = params.user_ids ? new Set(params.user_ids) : null;
    const users = wanted ? all.filter((u) => wanted.has(u.id)) : all;
    return success(reply, { members: users.map((u) => presentUser(app.present, u)) }, ignored);
  });

  http.get('/api/v1/users/me', auth, async (req, reply) => {
    const { ignored } = parseParams(req, {});
    return success(reply, presentOwnUser(app.present, req.user), ignored);
  });

  http.get<{ Params: { who: string } }>('/api/v1/users/:who', auth, (req, reply) => {
    const { ignored } = parseParams(req, common);
    const who = req.params.who;
    const id = /^\d+$/.test(who) ? pathId({ user_id: who }, 'user_id') : null;
    // The hot path: a user in this node's L1 is answered synchronously, with bytes kept beside the
    // cached row (no promise, no serializing).
    const cached = id !== null && ignored.length === 0 ? app.reads.peekUser(id) : null;
    if (cached) return reply.type(JSON_UTF8).send(presentUserResponse(app.present, cached));
    const user = id !== null ? app.reads.user(id) : lookupUserByApiEmail(app.reads, who, app.present.host);
    return user.then((found) => {
      if (!found) throw fail.noSuchUser(`${id !== null ? 'user_id' : 'email'} '${who}'`);
      if (ignored.length > 0) return success(reply, { user: presentUser(app.present, found) }, ignored);
      return reply.type(JSON_UTF8).send(presentUserResponse(app.present, found));
    });
  });

  http.post('/api/v1/users', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      email: param.string(254),
      password: param.string(1024),
      full_name: param.string(1024),
    });
    const { value } = await app.log.run(app.realmId, (ctx) =>
      createUser(
        ctx,
        req.user,
        { email: params.email, password: params.password, fullName: params.full_name },
        { passwordHashCost: app.config.passwordHashCost },
      ),
    );
    return success(reply, { user_id: value.id }, ignored);
  });

  http.patch<{ Params: { user_id: string } }>('/api/v1/users/:user_id', auth, async (req, reply) => {
    const userId = pathId(req.params, 'user_id');
    const { params, ignored } = parseParams(req, {
      full_name: param.string(1024).optional(),
      role: param.int().optional(),
      profile_data: param.string().optional(),
    });
    if (params.profile_data !== undefined) ignored.push('profile_data');
    await app.log.run(app.realmId, (ctx) =>
      updateUser(ctx, req.user, userId, { fullName: params.full_name, role: params.role }),
    );
    return success(reply, {}, ignored);
  });

  http.delete<{ Params: { user_id: string } }>('/api/v1/users/:user_id', auth, async (req, reply) => {
    const userId = pathId(req.params, 'user_id');
    const { ignored } = parseParams(req, {
      deactivation_notification_comment: param.string(2000).optional(),
    });
    await app.log.run(app.realmId, (ctx) => deactivateUser(ctx, req.user, userId));
    return success(reply, {}, ignored);
  });

  http.post<{ Params: { user_id: string } }>(
    '/api/v1/users/:user_id/reactivate',
    auth,
    async (req, reply) => {
      const userId = pathId(req.params, 'user_id');
      const { ignored } = parseParams(req, {});
      await app.log.run(app.realmId, (ctx) => reactivateUser(ctx, req.user, userId));
      return success(reply, {}, ignored);
    },
  );

  http.patch('/api/v1/settings', auth, async (req, reply) => {
    const { params, ignored } = parseParams(req, { full_name: param.string(1024).optional() });
    await app.log.run(app.realmId, (ctx) =>
      updateUser(ctx, req.user, req.user.id, { fullName: params.full_name }),
    );
    return success(reply, {}, ignored);
  });
}
