import websocket from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { ConcordError } from '../../errors.js';
import type { QueuedEvent } from '../../events/queue.js';
import type { AppContext } from '../context.js';
import { param, parseParams } from '../params.js';
import { requireUser } from '../requireUser.js';

/** A WebSocket whose unsent bytes exceed this is closed; its client resumes from its last id. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

const errorBody = (err: unknown) =>
  err instanceof ConcordError
    ? { result: 'error', msg: err.message, code: err.code, ...err.extra }
    : { result: 'error', msg: 'Internal server error', code: 'INTERNAL_SERVER_ERROR' };

/**
 * Follows a queue for as long as `open()` holds: `write` gets each batch of real events (ids as
 * long-poll gives them), `beat` each heartbeat. Acknowledgement stays with the client: `acked()`
 * says what it acknowledged (at connect, or later over a WebSocket); events written but not yet
 * acknowledged stay in the queue, so a client that resumes from its last id loses nothing.
 */
async function follow(
  app: AppContext,
  req: FastifyRequest,
  queueId: string,
  io: {
    acked(): number;
    open(): boolean;
    signal: AbortSignal;
    write(events: QueuedEvent[]): void;
    beat(): void;
  },
): Promise<void> {
  let after = io.acked();
  while (io.open()) {
    const batch = await app.queues.poll(queueId, req.user.id, io.acked(), {
      dontBlock: false,
      signal: io.signal,
      after,
    });
    if (!io.open()) return;
    const events = batch.filter((e) => e.type !== 'heartbeat');
    if (events.length === 0) {
      io.beat();
      continue;
    }
    io.write(events);
    after = events[events.length - 1]!.id;
  }
}

/**
 * The same event queues as long-poll, read as a stream: Server-Sent Events (`GET
 * /api/v1/events/stream`, resumable with `Last-Event-ID`) and WebSocket (`GET
 * /api/v1/events/socket`, acknowledging with `{"ack": id}` messages). Both authenticate with HTTP
 * Basic like every API call, and both send the events long-poll would, with the same ids.
 */
export async function eventStreamRoutes(http: FastifyInstance, app: AppContext): Promise<void> {
  const auth = { preHandler: requireUser(app) };
  await http.register(websocket, { options: { maxPayload: 64 * 1024 } });

  http.get('/api/v1/events/stream', auth, async (req, reply) => {
    const { params } = parseParams(req, {
      queue_id: param.string(100),
      last_event_id: param.int().optional(),
    });
    const header = req.headers['last-event-id'];
    const fromHeader = typeof header === 'string' && /^-?\d{1,15}$/.test(header) ? Number(header) : undefined;
    const acked = fromHeader ?? params.last_event_id ?? -1;
    // Errors before the stream starts (unknown queue, an id older than retained) are plain JSON.
    await app.queues.poll(params.queue_id, req.user.id, acked, { dontBlock: true });

    const abort = new AbortController();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n\n`);
    let open = true;
    res.on('close', () => {
      open = false;
      abort.abort();
    });
    try {
      await follow(app, req, params.queue_id, {
        acked: () => acked,
        open: () => open,
        signal: abort.signal,
        write: (events) => {
          for (const e of events) res.write(`id: ${e.id}\ndata: ${JSON.stringify(e)}\n\n`);
        },
        beat: () => res.write(': heartbeat\n\n'),
      });
    } catch (err) {
      if (open) res.write(`event: error\ndata: ${JSON.stringify(errorBody(err))}\n\n`);
      if (!(err instanceof ConcordError)) req.log.error({ err }, 'event stream failed');
    }
    res.end();
  });

  http.route({
    method: 'GET',
    url: '/api/v1/events/socket',
    ...auth,
    // A plain GET (no upgrade) gets Zulip's error shape rather than the plugin's bare 404.
    handler: async () => {
      throw new ConcordError('BAD_REQUEST', 'This endpoint needs a WebSocket upgrade (Upgrade: websocket)');
    },
    wsHandler: (socket: WebSocket, req) => {
      let params: { queue_id: string; last_event_id?: number | undefined };
      try {
        params = parseParams(req, {
          queue_id: param.string(100),
          last_event_id: param.int().optional(),
        }).params;
      } catch (err) {
        socket.send(JSON.stringify(errorBody(err)));
        socket.close(1008, 'bad request');
        return;
      }
      let acked = params.last_event_id ?? -1;
      let open = true;
      const abort = new AbortController();
      const stop = () => {
        open = false;
        abort.abort();
      };
      socket.on('close', stop);
      socket.on('error', stop);
      socket.on('message', (data) => {
        try {
          const msg = JSON.parse(String(data)) as { ack?: unknown };
          if (typeof msg.ack === 'number' && Number.isSafeInteger(msg.ack) && msg.ack > acked)
            acked = msg.ack;
        } catch {
          socket.close(1003, 'messages must be JSON: {"ack": <event id>}');
        }
      });
      const send = (value: unknown) => {
        if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
          // A client that does not read must not grow our memory; it resumes from its last id.
          socket.close(1013, 'client too slow; reconnect with last_event_id');
          stop();
          return;
        }
        socket.send(JSON.stringify(value));
      };
      follow(app, req, params.queue_id, {
        acked: () => acked,
        open: () => open && socket.readyState === socket.OPEN,
        signal: abort.signal,
        write: (events) => send({ events }),
        beat: () => send({ type: 'heartbeat' }),
      })
        .catch((err: unknown) => {
          if (open) send(errorBody(err));
          if (!(err instanceof ConcordError)) req.log.error({ err }, 'event socket failed');
        })
        .finally(() => {
          if (socket.readyState === socket.OPEN) socket.close(1000, 'queue ended');
        });
    },
  });
}
