import type { FastifyInstance, FastifyRequest } from 'fastify';
import { clearAvatar } from '../../domain/users/clearAvatar.js';
import { setAvatar } from '../../domain/users/setAvatar.js';
import { fail } from '../../errors.js';
import { checkAvatar } from '../../images/avatarImage.js';
import type { AppContext } from '../context.js';
import { avatarUrl } from '../presenters/user.js';
import { pathId, success } from '../reply.js';
import { requireUser } from '../requireUser.js';

/** The one uploaded file of a multipart request (multipart is registered with `keyValues`). */
function uploadedFile(req: FastifyRequest): Buffer {
  const body = (req.body ?? {}) as Record<string, unknown>;
  const files = Object.values(body).filter((v): v is Buffer => Buffer.isBuffer(v));
  if (files.length !== 1) throw fail.badRequest('You must upload exactly one avatar.');
  return files[0]!;
}

/**
 * Avatar upload as Zulip does it: `POST /users/me/avatar` (multipart, one file) and `DELETE` to go
 * back to the default. Concord adds `POST|DELETE /users/{user_id}/avatar` for administrators
 * (documented in openapi.ts). The answer carries the new versioned `avatar_url`.
 */
export function avatarUploadRoutes(http: FastifyInstance, app: AppContext): void {
  const auth = { preHandler: requireUser(app) };
  // The multipart parser enforces maxBytes too (app.ts), before the file is buffered whole.
  const limits = { maxBytes: app.config.avatarMaxBytes, maxPixels: app.config.imageMaxPixels };
  const upload = async (req: FastifyRequest, userId: number) => {
    const checked = await checkAvatar(uploadedFile(req), limits);
    const { value } = await app.log.run(app.realmId, (ctx) => setAvatar(ctx, req.user, userId, checked));
    return avatarUrl(app.present, { id: userId, avatar_version: value });
  };
  const clear = async (req: FastifyRequest, userId: number) => {
    const { value } = await app.log.run(app.realmId, (ctx) => clearAvatar(ctx, req.user, userId));
    return avatarUrl(app.present, { id: userId, avatar_version: value });
  };

  http.post('/api/v1/users/me/avatar', auth, async (req, reply) =>
    success(reply, { avatar_url: await upload(req, req.user.id) }),
  );
  http.delete('/api/v1/users/me/avatar', auth, async (req, reply) =>
    success(reply, { avatar_url: await clear(req, req.user.id) }),
  );
  http.post<{ Params: { user_id: string } }>('/api/v1/users/:user_id/avatar', auth, async (req, reply) =>
    success(reply, { avatar_url: await upload(req, pathId(req.params, 'user_id')) }),
  );
  http.delete<{ Params: { user_id: string } }>('/api/v1/users/:user_id/avatar', auth, async (req, reply) =>
    success(reply, { avatar_url: await clear(req, pathId(req.params, 'user_id')) }),
  );
}
