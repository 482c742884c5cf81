import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { findUserByApiEmail } from '../../auth/authenticate.js';
import { getUser } from '../../domain/users/userQueries.js';
import { fail } from '../../errors.js';
import { renderAvatar } from '../../images/avatarImage.js';
import { ResultStore, resultKey } from '../../images/resultStore.js';
import { Sources } from '../../images/sources.js';
import { refusedOverLimit } from '../../images/transform.js';
import { avatarSizes, defaultAvatarSize, defaultAvatarSvg } from '../../images/defaultAvatar.js';
import { immutable, notModified } from '../conditional.js';
import type { AppContext } from '../context.js';
import { avatarUrl } from '../presenters/user.js';
import { imageRoutes } from './images.js';

/** Redirects to the current version may change with the next avatar: cache them only briefly. */
const BRIEF = 'public, max-age=60';
/** Part of every result key: a new sharp/libvips may encode differently, so its results are new ones. */
const ENCODER = `avatar-png-1 sharp ${sharp.versions.sharp} vips ${sharp.versions.vips}`;
const SWEEP_MS = 60_000;

function size(raw: unknown): number {
  if (raw === undefined) return defaultAvatarSize;
  const n = Number(raw);
  if (!(avatarSizes as readonly number[]).includes(n))
    throw fail.invalid('s', `size must be one of ${avatarSizes.join(', ')}`);
  return n;
}

/**
 * Avatars. `/avatar/{id}/v{version}` is immutable: the URL changes with every new avatar, so
 * caches may keep it forever. A URL of an older version redirects to the current one (never
 * serving new bytes under an old, immutable name). `/avatar/{id or e-mail}` is Zulip's redirect.
 */
export function avatarRoutes(http: FastifyInstance, app: AppContext): void {
  const results = new ResultStore({
    dir: app.config.resultDir ?? join(app.config.dataDir, 'results'),
    maxBytes: app.config.resultMaxBytes,
    minFreeBytes: app.config.resultMinFreeBytes,
    onCorrupt: () => app.metrics.imageResultsCorrupt.inc(),
    onWriteError: (err) => app.logger.warn({ err }, 'could not write an image result'),
  });
  let sweeper: NodeJS.Timeout | undefined;
  http.addHook('onReady', async () => {
    await results.start();
    const sweep = () =>
      results.sweep().catch((err: unknown) => app.logger.warn({ err }, 'image result sweep failed'));
    sweeper = setInterval(sweep, SWEEP_MS).unref();
    void sweep();
  });
  http.addHook('onClose', async () => {
    clearInterval(sweeper);
    await results.close();
  });
  const sources = new Sources(() => app.store.db, app.config.imageSourceMemoryBytes);
  imageRoutes(http, app, results, sources);
  const current = (user: { id: number; avatar_version: number }, s: number) => {
    const url = avatarUrl(app.present, user);
    return s === defaultAvatarSize ? url : `${url}?s=${s}`;
  };

  http.get<{ Params: { id: string; version: string }; Querystring: { s?: string } }>(
    '/avatar/:id/v:version',
    async (req, reply) => {
      const s = size(req.query.s);
      const id = /^\d{1,10}$/.test(req.params.id) ? Number(req.params.id) : NaN;
      const user = Number.isSafeInteger(id) ? await getUser(app.store.db, app.realmId, id) : undefined;
      if (!user) throw fail.noSuchUser(`user_id '${req.params.id}'`);
      if (req.params.version !== String(user.avatar_version))
        return reply.header('cache-control', BRIEF).redirect(current(user, s), 302);
      // Weak, as a transform's (images/resultStore.ts etagOf): the version and size fix the image,
      // not every byte, which libvips may encode differently on another node's CPU.
      const etag = `W/"avatar-${user.id}-${user.avatar_version}-${s}"`;
      if (notModified(req, etag)) return immutable(reply.code(304), etag).send();
      // The upload's bytes are read only when a size must be rendered (see images.ts).
      const uploaded = await app.store.db
        .selectFrom('avatars')
        .select('sha256')
        .where('user_id', '=', user.id)
        .executeTakeFirst();
      if (uploaded) {
        // Checked at upload; each size is rendered once and kept, verified, in the result store.
        const key = resultKey(uploaded.sha256, `avatar/square/${s}/png`, ENCODER);
        let content: Promise<Buffer | undefined> | undefined;
        const readSource = () => (content ??= sources.read(uploaded.sha256));
        const produce = async () => {
          const source = await readSource();
          if (!source) throw fail.noSuchUser(`avatar of user_id '${user.id}'`);
          app.metrics.imageTransforms.inc();
          const max = app.config.imageMaxPixels;
          return renderAvatar(source, s, max).catch((err: unknown) => {
            throw refusedOverLimit(err, max);
          });
        };
        // As in images.ts: the source is read while the result store takes its lock.
        const prefetch = () => void readSource().catch(() => undefined);
        const { body } = await results.get(key, produce, prefetch);
        return immutable(reply, etag)
          .type('image/png')
          .header('x-content-type-options', 'nosniff')
          .send(body);
      }
      return immutable(reply, etag)
        .type('image/svg+xml')
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
        .header('x-content-type-options', 'nosniff')
        .send(defaultAvatarSvg(user, s));
    },
  );

  http.get<{ Params: { who: string }; Querystring: { s?: string } }>('/avatar/:who', async (req, reply) => {
    const s = size(req.query.s);
    const who = req.params.who;
    const user = /^\d{1,10}$/.test(who)
      ? await getUser(app.store.db, app.realmId, Number(who))
      : await findUserByApiEmail(app.store.db, app.realmId, who, app.present.host);
    if (!user) throw fail.noSuchUser(`${/^\d+$/.test(who) ? 'user_id' : 'email'} '${who}'`);
    return reply.header('cache-control', BRIEF).redirect(current(user, s), 302);
  });
}
