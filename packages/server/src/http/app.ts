import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyError, FastifyInstance } from 'fastify';
import { ConcordError } from '../errors.js';
import type { AppContext } from './context.js';
import { sendError } from './reply.js';
import { authRoutes } from './routes/auth.js';
import { avatarUploadRoutes } from './routes/avatarUpload.js';
import { avatarRoutes } from './routes/avatars.js';
import { directorySourceRoutes } from './routes/directorySources.js';
import { eventRoutes } from './routes/events.js';
import { eventStreamRoutes } from './routes/eventStream.js';
import { healthRoutes } from './routes/health.js';
import { streamRoutes } from './routes/streams.js';
import { subscriptionRoutes } from './routes/subscriptions.js';
import { userRoutes } from './routes/users.js';
import { webRoutes } from './routes/web.js';

/** Maps what Fastify and its parsers throw to the catalogue, so that every error has Zulip's shape. */
function toConcordError(err: FastifyError, fileMaxBytes: number): ConcordError {
  if (err instanceof ConcordError) return err;
  switch (err.code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return new ConcordError(
        'PAYLOAD_TOO_LARGE',
        `The uploaded file is larger than the ${fileMaxBytes} bytes allowed`,
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
    case 'FST_PARTS_LIMIT':
      return new ConcordError('PAYLOAD_TOO_LARGE', 'Request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ConcordError(
        'UNSUPPORTED_MEDIA_TYPE',
        `Unsupported Content-Type: send application/x-www-form-urlencoded, multipart/form-data or application/json`,
      );
    case 'FST_PROTO_VIOLATION':
      return new ConcordError('BAD_REQUEST', 'Invalid field name: __proto__ is not allowed');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ConcordError('INVALID_JSON', 'Malformed JSON body');
  }
  if (err instanceof SyntaxError) return new ConcordError('INVALID_JSON', 'Malformed JSON body');
  if (isDatabaseUnavailable(err))
    return new ConcordError('SERVICE_UNAVAILABLE', 'The database is unavailable; retry shortly', {}, 2);
  // The multipart parser (busboy) throws plain errors, without a status, on truncated bodies.
  if (
    err.statusCode === undefined &&
    /multipart data|unexpected end of form|malformed part header/i.test(err.message)
  )
    return new ConcordError('BAD_REQUEST', `Malformed multipart/form-data body: ${err.message}`);
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500)
    return new ConcordError('BAD_REQUEST', `Malformed request: ${err.message}`);
  return new ConcordError('INTERNAL_SERVER_ERROR', 'Internal server error');
}

// Connection-level failures (refused, reset, the server shutting down, a pool timeout) as opposed
// to errors of a query: the request may succeed once the database is back.
const DB_UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
]);
function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string' && (DB_UNAVAILABLE_CODES.has(e.code) || /^(08|57P)/.test(e.code)))
    return true;
  return (
    typeof e.message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(
      e.message,
    )
  );
}

/** Paths that serve workspace data: answered only by a ready node. */
const DATA_PATH = /^\/(api|avatar|img|user_avatars)(\/|$)/;
/** Paths under DATA_PATH that a warming or unready node still answers. */
const ALWAYS_OPEN = new Set(['/api/v1/concord/status/stream']);

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (an unknown method, headers over
 * the size limit, a malformed request line): answered in Zulip's shape too, then the connection
 * is closed as Node would.
 */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new ConcordError('HEADERS_TOO_LARGE', 'Request headers (URL included) are larger than 16 KiB')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ConcordError('REQUEST_TIMEOUT', 'Request took too long to arrive')
        : new ConcordError('BAD_REQUEST', `Malformed HTTP request (${err.code ?? 'parse error'})`);
  const body = JSON.stringify({ result: 'error', msg: error.message, code: error.code });
  // A response to HEAD has no body; a client would read one as garbage after the headers.
  const raw = (err as { rawPacket?: unknown }).rawPacket;
  const head = Buffer.isBuffer(raw) && raw.subarray(0, 5).toString('latin1') === 'HEAD ';
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`,
    );
  socket.destroy();
}

// RFC 2046 allows boundaries of 1 to 70 characters; busboy throws a status-less error without one
// and its searcher fails past 256, both of which would otherwise surface as 500s.
const BOUNDARY = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))\s*(?:;|$)/i;

function progressText(p: { loaded: Record<string, number>; total: Record<string, number> }): string {
  const parts = Object.entries(p.loaded).map(([kind, n]) =>
    p.total[kind] !== undefined ? `${n} of ${p.total[kind]} ${kind}` : `${n} ${kind}`,
  );
  return parts.length > 0 ? `: ${parts.join(', ')}` : '';
}

/** Whether `p` settles within `ms`. */
async function waitFor(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Builds the Fastify app: parsers, routes, and the error edge. Does not listen. */
export async function buildApp(app: AppContext): Promise<FastifyInstance> {
  const http = Fastify({
    loggerInstance: app.logger as FastifyBaseLogger,
    // Per-request lines would drown the log; request timings are in /metrics instead.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request (a pino child costs more than the rest of a cached GET); errors
    // are logged with the request's method and URL instead.
    childLoggerFactory: (logger) => logger,
    bodyLimit: 1024 * 1024,
    // Zulip paths are matched exactly but clients differ on a trailing slash.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 300 },
    trustProxy: false,
    clientErrorHandler,
    // A path that is not valid percent-encoding, or a path parameter over maxParamLength.
    frameworkErrors: (err, req, reply) =>
      sendError(
        reply,
        new ConcordError(
          'BAD_REQUEST',
          err.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? 'Malformed URL: a path parameter is longer than 300 characters'
            : `Malformed URL: the path '${req.url.split('?')[0]}' is not valid percent-encoded UTF-8`,
        ),
      ),
  });
  // Set by the first hook; declared here so that every request object has the same shape.
  http.decorateRequest('servesData', false);
  // Callback-style hooks: they finish synchronously on the hot path (no promise per request).
  http.addHook('onRequest', (req, _reply, done) => {
    const type = req.headers['content-type'];
    if (type && /^\s*multipart\//i.test(type) && !BOUNDARY.test(type))
      return done(
        new ConcordError(
          'BAD_REQUEST',
          'Invalid Content-Type: multipart/form-data needs a boundary of 1 to 70 characters',
        ),
      );
    // Readiness gate: nothing reads workspace data before warm-up is done (incident 5), or while
    // the node knows it is behind (its consumer stalled, the database away).
    const q = req.url.indexOf('?');
    const path = q === -1 ? req.url : req.url.slice(0, q);
    if (!DATA_PATH.test(path)) return done();
    req.servesData = true;
    if (ALWAYS_OPEN.has(path)) return done();
    if (!app.readiness.isReady) {
      const s = app.readiness.status();
      const why =
        s.status === 'warming'
          ? `Concord is starting up (${s.phase}${progressText(s.progress)}); retry shortly`
          : `This node is not ready: ${s.reason ?? s.phase}; retry shortly`;
      return done(new ConcordError('SERVICE_UNAVAILABLE', why, {}, 2));
    }
    // Read-your-writes: a request naming a log position waits (bounded) until this node applied it.
    const wanted = req.headers['x-concord-min-position'];
    if (wanted === undefined) return done();
    if (typeof wanted !== 'string' || !/^\d{1,15}$/.test(wanted))
      return done(
        new ConcordError(
          'BAD_REQUEST',
          'Invalid X-Concord-Min-Position header: expected a log position (an integer)',
        ),
      );
    const seq = Number(wanted);
    if (app.cursor() >= seq) return done();
    waitFor(app.waitForPosition(seq), app.config.readWaitMs).then((applied) =>
      done(
        applied
          ? undefined
          : new ConcordError(
              'SERVICE_UNAVAILABLE',
              `This node has not yet applied log position ${seq} (it is at ${app.cursor()}); retry shortly`,
              {},
              1,
            ),
      ),
    );
  });
  // Every answer names a log position: after a write, one at or after the write's own change (use
  // it as X-Concord-Min-Position on any node to read the write); after a read, the position the
  // node's data reflected at least.
  http.addHook('onSend', (req, reply, payload, done) => {
    if (req.servesData && app.readiness.isReady) {
      const position =
        req.method === 'GET' || req.method === 'HEAD'
          ? app.cursor()
          : Math.max(app.log.lastCommitted, app.cursor());
      reply.header('X-Concord-Position', String(position));
    }
    done(null, payload);
  });
  http.setErrorHandler((err: FastifyError, req, reply) => {
    const error = toConcordError(err, app.config.avatarMaxBytes);
    // 503 is an expected answer (warming up, database away), already logged where it is decided.
    if (error.status >= 500 && error.code !== 'SERVICE_UNAVAILABLE')
      req.log.error({ err, method: req.method, url: req.url }, 'request failed');
    return sendError(reply, error);
  });
  http.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      new ConcordError('NOT_FOUND', `Endpoint not found: ${req.method} ${req.url.split('?')[0]}`),
    ),
  );
  // One histogram child per (method, route, status), looked up once: labels() hashes its arguments.
  const timers = new Map<string, { observe(v: number): void }>();
  http.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const key = `${req.method} ${route} ${reply.statusCode}`;
    let timer = timers.get(key);
    if (!timer) {
      timer = app.metrics.httpRequests.child({ method: req.method, route, status: String(reply.statusCode) });
      timers.set(key, timer);
    }
    timer.observe(reply.elapsedTime / 1000);
    done();
  });

  // The routes that take request bodies, in a context of their own with the body parsers. The
  // others (images, avatars, health, event streams, the web UI) are GET routes and stay outside it,
  // because @fastify/multipart's hooks run on every request of its context: an async preValidation
  // and an async onResponse, a promise each even without a body (~50 µs of a cold /img request
  // before its transform starts, measured). A body sent to a path of no route is still answered
  // 404: the not-found handler is the root's, whose parsers (JSON, plain text) still run, and a body
  // of a type it has none for is skipped for a not-found request.
  await http.register(async (api) => {
    await api.register(formbody);
    await api.register(multipart, {
      attachFieldsToBody: 'keyValues',
      limits: {
        fields: 200,
        fieldSize: 256 * 1024,
        files: 1,
        fileSize: app.config.avatarMaxBytes,
        parts: 250,
      },
    });
    // Some clients send text/plain or an empty type on bodiless requests; treat them as empty.
    api.addContentTypeParser('text/plain', { parseAs: 'string' }, (_req, _body, done) => done(null, {}));
    authRoutes(api, app);
    userRoutes(api, app);
    streamRoutes(api, app);
    subscriptionRoutes(api, app);
    eventRoutes(api, app);
    avatarUploadRoutes(api, app);
    directorySourceRoutes(api, app);
  });
  await eventStreamRoutes(http, app);
  healthRoutes(http, app);
  avatarRoutes(http, app);
  await webRoutes(http, app);
  return http;
}
