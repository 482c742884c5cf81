import type { FastifyInstance } from 'fastify';
import { ConcordError, fail } from '../../errors.js';
import type { ResultStore } from '../../images/resultStore.js';
import { resultKey } from '../../images/resultStore.js';
import { refusedOverLimit, transform, transformEncoder } from '../../images/transform.js';
import { parseOps, verify } from '../../images/transformUrl.js';
import type { AppContext } from '../context.js';

const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * Signed transform URLs (see images/transformUrl.ts). Without configured keys every URL is refused.
 * A bad or missing signature is 403 before anything else is looked at.
 */
export function imageRoutes(http: FastifyInstance, app: AppContext, results: ResultStore): void {
  const keys = (app.config.imageKeys ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  http.get<{ Params: { sig: string; '*': string } }>('/img/:sig/*', async (req, reply) => {
    const canonical = req.params['*'];
    if (keys.length === 0 || !verify(keys, canonical, req.params.sig))
      throw new ConcordError('FORBIDDEN', 'Invalid image URL signature');
    const ops = parseOps(canonical);
    if (typeof ops === 'string') throw fail.invalid('image URL', ops);
    const key = resultKey(ops.source, canonical, transformEncoder);
    // Only whether the source exists: its bytes (up to CONCORD_AVATAR_MAX_BYTES) are read only when
    // the result must be computed. Reading a 0.5 MB source costs ~0.45 ms of SQLite per request
    // against ~6 µs for this lookup (measured), as much as all the rest of serving a cached result.
    // A request joining one already in flight for this key skips it (that one looked it up
    // milliseconds ago): in a burst of 100 cold requests, 99 lookups fewer.
    if (!results.inFlight(key)) {
      const exists = await app.store.db
        .selectFrom('avatars')
        .select('sha256')
        .where('sha256', '=', ops.source)
        .executeTakeFirst();
      if (!exists) throw new ConcordError('NOT_FOUND', 'No such stored image');
    }
    let content: Promise<{ content: Uint8Array } | undefined> | undefined;
    const readSource = () =>
      (content ??= app.store.db
        .selectFrom('avatars')
        .select('content')
        .where('sha256', '=', ops.source)
        .executeTakeFirst());
    const produce = async () => {
      const source = await readSource();
      if (!source) throw new ConcordError('NOT_FOUND', 'No such stored image');
      app.metrics.imageTransforms.inc();
      const max = app.config.imageMaxPixels;
      return transform(Buffer.from(source.content), ops, max).catch((err: unknown) => {
        throw refusedOverLimit(err, max);
      });
    };
    // The source is read while the result store takes its lock (saves ~1 ms of a cold request).
    const prefetch = () => void readSource().catch(() => undefined);
    const { body, etag } = await results.get(key, produce, prefetch);
    reply.header('cache-control', IMMUTABLE).header('etag', etag);
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type(`image/${ops.format}`).header('x-content-type-options', 'nosniff').send(body);
  });
}
