import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyError, FastifyInstance } from 'fastify';
import { ConcordError } from '../errors.js';
import type { AppContext } from './context.js';
import { sendError } from './reply.js';
import { authRoutes } from './routes/auth.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { streamRoutes } from './routes/streams.js';
import { subscriptionRoutes } from './routes/subscriptions.js';
import { userRoutes } from './routes/users.js';
import { webRoutes } from './routes/web.js';

/** Maps what Fastify and its parsers throw to the catalogue, so that every error has Zulip's shape. */
function toConcordError(err: FastifyError): ConcordError {
  if (err instanceof ConcordError) return err;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
    case 'FST_PARTS_LIMIT':
      return new ConcordError('PAYLOAD_TOO_LARGE', 'Request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ConcordError(
        'UNSUPPORTED_MEDIA_TYPE',
        `Unsupported Content-Type: send application/x-www-form-urlencoded, multipart/form-data or application/json`,
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ConcordError('INVALID_JSON', 'Malformed JSON body');
  }
  if (err instanceof SyntaxError) return new ConcordError('INVALID_JSON', 'Malformed JSON body');
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500)
    return new ConcordError('BAD_REQUEST', `Malformed request: ${err.message}`);
  return new ConcordError('INTERNAL_SERVER_ERROR', 'Internal server error');
}

/** Builds the Fastify app: parsers, routes, and the error edge. Does not listen. */
export async function buildApp(app: AppContext): Promise<FastifyInstance> {
  const http = Fastify({
    loggerInstance: app.logger as FastifyBaseLogger,
    // Per-request lines would drown the log; request timings are in /metrics instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // Zulip paths are matched exactly but clients differ on a trailing slash.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 300 },
    trustProxy: false,
  });
  await http.register(formbody);
  await http.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { fields: 200, fieldSize: 256 * 1024, files: 1, fileSize: 1024 * 1024, parts: 250 },
  });
  // Some clients send text/plain or an empty type on bodiless requests; treat them as empty.
  http.addContentTypeParser('text/plain', { parseAs: 'string' }, (_req, _body, done) => done(null, {}));

  http.setErrorHandler((err: FastifyError, req, reply) => {
    const error = toConcordError(err);
    if (error.status >= 500) req.log.error({ err }, 'request failed');
    return sendError(reply, error);
  });
  http.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      new ConcordError('NOT_FOUND', `Endpoint not found: ${req.method} ${req.url.split('?')[0]}`),
    ),
  );
  http.addHook('onResponse', async (req, reply) => {
    app.metrics.httpRequests
      .labels(req.method, req.routeOptions.url ?? 'unmatched', String(reply.statusCode))
      .observe(reply.elapsedTime / 1000);
  });

  authRoutes(http, app);
  userRoutes(http, app);
  streamRoutes(http, app);
  subscriptionRoutes(http, app);
  eventRoutes(http, app);
  healthRoutes(http, app);
  await webRoutes(http, app);
  return http;
}
