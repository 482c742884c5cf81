import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { checkCredentials, lookupUserByApiEmail, readBasic } from '../auth/authenticate.js';
import { ConcordError } from '../errors.js';
import type { AppContext } from './context.js';

/**
 * A pre-handler that authenticates the request (HTTP Basic `email:api_key`) and sets `req.user`.
 * When the user is in the node's L1 cache it completes synchronously (no promise per request on
 * the hottest path); otherwise it reads through the cache.
 */
export function requireUser(app: AppContext) {
  const failed = (err: unknown) => {
    if (err instanceof ConcordError && err.code === 'INVALID_API_KEY') app.metrics.loginFailures.inc();
    return err as Error;
  };
  return (req: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    let creds;
    try {
      creds = readBasic(req.headers.authorization, req.ip, app.limiter);
      const cached = app.reads.peekUserByApiEmail(creds.email);
      if (cached !== undefined) {
        req.user = checkCredentials(cached, creds, app.limiter);
        done();
        return;
      }
    } catch (err) {
      done(failed(err));
      return;
    }
    lookupUserByApiEmail(app.reads, creds.email, app.present.host)
      .then((user) => {
        req.user = checkCredentials(user, creds, app.limiter);
        done();
      })
      .catch((err: unknown) => done(failed(err)));
  };
}
