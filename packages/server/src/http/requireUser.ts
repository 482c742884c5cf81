import type { FastifyReply, FastifyRequest } from 'fastify';
import { authenticateBasic } from '../auth/authenticate.js';
import { ConcordError } from '../errors.js';
import type { AppContext } from './context.js';

/** A pre-handler that authenticates the request (HTTP Basic `email:api_key`) and sets `req.user`. */
export function requireUser(app: AppContext) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    try {
      req.user = await authenticateBasic(
        app.reads,
        app.present.host,
        req.headers.authorization,
        req.ip,
        app.limiter,
      );
    } catch (err) {
      if (err instanceof ConcordError && err.code === 'INVALID_API_KEY') app.metrics.loginFailures.inc();
      throw err;
    }
  };
}
