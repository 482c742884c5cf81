import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { ConcordError } from '../../errors.js';
import type { PendingEvent } from '../../events/queue.js';
import type { QueueStream } from '../../events/queueService.js';
import type { AppContext } from '../context.js';
import { param, parseParams } from '../params.js';
import { requireUser } from '../requireUser.js';

/** A WebSocket whose unsent bytes exceed this is closed; its client resumes from its last id. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

const errorBody = (err: unknown) =>
  err instanceof ConcordError
    ? { result: 'error', msg: err.message, code: err.code, ...err.extra }
    : { result: 'error', msg: 'Internal server error', code: 'INTERNAL_SERVER_ERROR' };

/** `{"events":[...]}` for a run of pending events, with each event's own id spliced in. */
const wsFrame = (pending: readonly PendingEvent[]): string =>
  `{"events":[${pending.map((p) => `${p.shared.json.slice(0, -1)},"id":${p.id}}`).join(',')}]}`;

/** One SSE message per event. */
const sseFrame = (pending: readonly PendingEvent[]): string =>
  pending.map((p) => `id: ${p.id}\ndata: ${p.shared.json.slice(0, -1)},"id":${p.id}}\n\n`).join('');

/**
 * Encodes pending events once for every queue that received exactly the same derivation from
 * the same first id (one change fanned out to many clients of one view): the bytes are shared.
 */
function encoded(
  kind: 'ws' | 'sse',
  pending: readonly PendingEvent[],
  encode: (p: readonly PendingEvent[]) => string,
): string | Buffer {
  const batch = pending[0]!.shared.batch;
  if (batch.events.length !== pending.length || batch.events[0] !== pending[0]!.shared)
    return encode(pending);
  const key = `${kind}:${pending[0]!.id}`;
  let frame = batch.frames.get(key);
  if (frame === undefined) batch.frames.set(key, (frame = Buffer.from(encode(pending))));
  return frame;
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
    const res = reply.raw;
    let open = true;
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(`retry: 2000\n\n`);
    };
    const write = (chunk: string | Buffer) => {
      start();
      if (open) res.write(chunk);
    };
    // Errors before the stream starts (unknown queue, an id older than retained) are plain JSON.
    const stream = await app.queues.stream(params.queue_id, req.user.id, acked, {
      events: (pending) => write(encoded('sse', pending, sseFrame)),
      heartbeat: () => write(': heartbeat\n\n'),
      end: (err) => {
        if (err !== null) write(`event: error\ndata: ${JSON.stringify(errorBody(err))}\n\n`);
        if (err !== null && !(err instanceof ConcordError)) req.log.error({ err }, 'event stream failed');
        start();
        open = false;
        res.end();
      },
    });
    start();
    if (res.writableEnded) return;
    res.on('close', () => {
      open = false;
      stream.close();
    });
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
      let stream: QueueStream | null = null;
      let open = true;
      const stop = () => {
        open = false;
        stream?.close();
      };
      socket.on('close', stop);
      socket.on('error', stop);
      socket.on('message', (data) => {
        const text = String(data);
        // The message every client sends after every batch: read without a JSON parse.
        const plain = /^\{"ack":(\d{1,15})\}$/.exec(text);
        if (plain) {
          const id = Number(plain[1]);
          if (id > acked) {
            acked = id;
            stream?.acknowledge(acked);
          }
          return;
        }
        try {
          const msg = JSON.parse(text) as { ack?: unknown };
          if (typeof msg.ack === 'number' && Number.isSafeInteger(msg.ack) && msg.ack > acked) {
            acked = msg.ack;
            stream?.acknowledge(acked);
          }
        } catch {
          socket.close(1003, 'messages must be JSON: {"ack": <event id>}');
        }
      });
      const send = (frame: string | Buffer) => {
        if (!open || socket.readyState !== socket.OPEN) return;
        if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
          // A client that does not read must not grow our memory; it resumes from its last id.
          socket.close(1013, 'client too slow; reconnect with last_event_id');
          stop();
          return;
        }
        // Frames shared by many sockets are Buffers: sent as text, encoded once.
        socket.send(frame, { binary: false });
      };
      const end = (err: unknown) => {
        if (err === null) {
          // The node is shutting down: the client resumes from its last id on another node.
          if (socket.readyState === socket.OPEN) socket.close(1012, 'server restarting');
          return;
        }
        send(JSON.stringify(errorBody(err)));
        if (!(err instanceof ConcordError)) req.log.error({ err }, 'event socket failed');
        if (socket.readyState === socket.OPEN) socket.close(1000, 'queue ended');
      };
      app.queues
        .stream(params.queue_id, req.user.id, acked, {
          events: (pending) => send(encoded('ws', pending, wsFrame)),
          heartbeat: () => send('{"type":"heartbeat"}'),
          end,
        })
        .then((s) => {
          stream = s;
          if (!open) s.close();
          else if (acked > (params.last_event_id ?? -1)) s.acknowledge(acked);
        }, end);
    },
  });
}
