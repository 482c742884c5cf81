import type { FastifyReply, FastifyRequest } from 'fastify';
import fresh from 'fresh';

/** What a URL that never changes its bytes (a versioned avatar, a signed transform) is cached as. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * Whether `req` is a conditional GET that a response with `etag` satisfies: If-None-Match compared
 * weakly, lists and `*` included (RFC 9110 13.1.2). Evaluated also under `Cache-Control: no-cache`,
 * which `fresh` alone would answer in full: fetch() adds it to every request that carries a
 * conditional header, and it asks caches to revalidate with the origin, which is what a 304 from
 * the origin is (RFC 9111 5.2.1.4).
 */
export function notModified(req: FastifyRequest, etag: string): boolean {
  const condition = req.headers['if-none-match'];
  return condition !== undefined && fresh({ 'if-none-match': condition }, { etag });
}

/**
 * Marks a successful answer (200 or 304) as cacheable forever under `etag`. Only those: an error
 * marked so would be kept by browsers and CDNs for a year.
 */
export function immutable(reply: FastifyReply, etag: string): FastifyReply {
  return reply.header('cache-control', IMMUTABLE).header('etag', etag);
}
