import type { FastifyInstance } from 'fastify';
import { ConcordError, fail } from '../../errors.js';
import type { ResultStore } from '../../images/resultStore.js';
import { etagOf, resultKey } from '../../images/resultStore.js';
import type { Sources } from '../../images/sources.js';
import { refusedOverLimit, transform, transformEncoder } from '../../images/transform.js';
import { parseOps, verify } from '../../images/transformUrl.js';
import { immutable, notModified } from '../conditional.js';
import type { AppContext } from '../context.js';

/**
 * Signed transform URLs (see images/transformUrl.ts). Without configured keys every URL is refused.
 * A bad or missing signature is 403 before anything else is looked at.
 */
export function imageRoutes(
  http: FastifyInstance,
  app: AppContext,
  results: ResultStore,
  sources: Sources,
): void {
  const keys = (app.config.imageKeys ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  http.get<{ Params: { sig: string; '*': string } }>('/img/:sig/*', async (req, reply) => {
    const canonical = req.params['*'];
    if (keys.length === 0)
      throw new ConcordError(
        'FORBIDDEN',
        'Image transforms are not enabled on this server (it has no signing keys)',
      );
    if (!verify(keys, canonical, req.params.sig))
      throw new ConcordError('FORBIDDEN', 'Invalid image URL signature');
    const ops = parseOps(canonical);
    if (typeof ops === 'string') throw fail.invalid('image URL', ops);
    const key = resultKey(ops.source, canonical, transformEncoder);
    const etag = etagOf(key);
    // The ETag names the result before it exists: a client holding it is answered without reading
    // or computing the image, once the source is known to be still stored.
    if (notModified(req, etag)) {
      if (!(await sources.exists(ops.source))) throw new ConcordError('NOT_FOUND', 'No such stored image');
      return immutable(reply.code(304), etag).send();
    }
    let content: Promise<Buffer | undefined> | undefined;
    const readSource = () => (content ??= sources.read(ops.source));
    const produce = async () => {
      // A source in memory is transformed in this very tick (no await before sharp is called).
      const source = sources.recent(ops.source) ?? (await readSource());
      if (!source) throw new ConcordError('NOT_FOUND', 'No such stored image');
      app.metrics.imageTransforms.inc();
      const max = app.config.imageMaxPixels;
      return transform(source, ops, max).catch((err: unknown) => {
        throw refusedOverLimit(err, max);
      });
    };
    // A source not in memory is read from the database while the result store takes its lock.
    const prefetch = () => void readSource().catch(() => undefined);
    const joined = results.inFlight(key);
    const result = results.get(key, produce, prefetch);
    // When the lookup below answers first (404, a database error), the result's outcome is unused.
    result.catch(() => undefined);
    // Whether the source is still stored is asked of the database on every request (a deleted
    // source is 404, even with its results on disk or its bytes in memory), after the get above
    // has started: on a cold request with the source in memory the transform then runs meanwhile.
    // A request joining one still computing this key skips it (that one looked it up milliseconds
    // ago): in a burst of 100 cold requests, 99 lookups fewer. Once that one is answered, requests
    // look it up again, though the result is still answered from memory while it is written.
    if (!joined && !(await sources.exists(ops.source)))
      throw new ConcordError('NOT_FOUND', 'No such stored image');
    const { body } = await result;
    return immutable(reply, etag)
      .type(`image/${ops.format}`)
      .header('x-content-type-options', 'nosniff')
      .send(body);
  });
}
