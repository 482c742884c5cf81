import { applyEvent } from './reducer.js';
import type { ClientState } from './state.js';
import { stateFromRegister } from './state.js';
import type { RegisterResponse, ZulipEvent } from './types.js';
import { eventSchema, registerResponseSchema } from './types.js';

/** An error answer from the server, with Zulip's stable `code`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  baseUrl: string;
  email: string;
  apiKey: string;
  /** Event types to follow; all that Concord has by default. */
  eventTypes?: string[];
  fetch?: typeof fetch;
  /** Called after register and after each batch of events, with the current store. */
  onState?(state: ClientState): void;
  /** Called when the connection state changes. */
  onStatus?(status: 'connecting' | 'live' | 'reconnecting' | 'stopped'): void;
  /** Called with each event before it is applied. */
  onEvent?(event: ZulipEvent): void;
  /** Backoff bounds in ms (defaults 250 ms .. 30 s). */
  backoff?: { minMs: number; maxMs: number };
  /**
   * How events arrive: `long-poll` (GET /events, the default) or `websocket` (the same queue over
   * /api/v1/events/socket: one connection, events pushed as they happen, acknowledged with
   * `{"ack": id}`). Both resume from the last event id and re-register when the queue is gone.
   */
  transport?: 'long-poll' | 'websocket';
  /**
   * Opens a WebSocket with these headers (Authorization). Defaults to the global `WebSocket`,
   * which cannot send headers: in Node, pass one built on the `ws` package.
   */
  webSocket?: (url: string, headers: Record<string, string>) => SocketLike;
  /**
   * WebSocket acknowledgements wait this long (ms, default 100) and cover every batch received
   * meanwhile: they only let the server trim the queue, so a burst costs one write, not one per
   * batch. Events redelivered after a drop within that window are recognised by id and skipped.
   */
  ackDelayMs?: number;
}

/** The part of the WHATWG WebSocket the client uses (the browser's, or `ws`'s in Node). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: 'error', listener: () => void): void;
}

const encode = (params: Record<string, unknown>) =>
  new URLSearchParams(
    Object.entries(params)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)] as [string, string]),
  );

/** Where and as whom {@link apiRequest} calls: no e-mail means no Authorization header. */
export interface ApiTarget {
  baseUrl: string;
  email?: string;
  apiKey?: string;
  fetch?: typeof fetch;
}

/**
 * One Zulip API call: parameters JSON-encoded in form fields (query string for GET), HTTP Basic
 * auth; resolves with the success body or throws {@link ApiError} with Zulip's `code`.
 */
export async function apiRequest<T = Record<string, unknown>>(
  target: ApiTarget,
  method: string,
  path: string,
  params: Record<string, unknown> = {},
  signal?: AbortSignal,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (target.email !== undefined)
    headers.authorization = `Basic ${btoa(`${target.email}:${target.apiKey ?? ''}`)}`;
  const query = method === 'GET' ? `?${encode(params)}` : '';
  const f = target.fetch ?? fetch.bind(globalThis);
  const res = await f(`${target.baseUrl}/api/v1${path}${query}`, {
    method,
    headers,
    body: method === 'GET' ? undefined : encode(params),
    signal,
  });
  let body: { result?: string; code?: string; msg?: string };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new ApiError(res.status, 'BAD_RESPONSE', `The server answered ${res.status} without JSON`);
  }
  if (body.result !== 'success') {
    const retry = res.headers.get('retry-after');
    throw new ApiError(
      res.status,
      body.code ?? 'BAD_REQUEST',
      body.msg ?? res.statusText,
      retry ? Number(retry) : undefined,
    );
  }
  return body as T;
}

/** `POST /fetch_api_key`: exchanges e-mail and password for the API key. */
export async function fetchApiKey(baseUrl: string, username: string, password: string, f?: typeof fetch) {
  const body = await apiRequest<{ api_key: string; email: string; user_id: number }>(
    { baseUrl, ...(f ? { fetch: f } : {}) },
    'POST',
    '/fetch_api_key',
    { username, password },
  );
  return { apiKey: body.api_key, email: body.email, userId: body.user_id };
}

/** Full jitter: a random delay up to the exponential bound, so that clients do not return in step. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  return Math.random() * Math.min(maxMs, minMs * 2 ** attempt);
}

/**
 * How long to wait before retrying after `err`: at least the server's `Retry-After` when it sent
 * one, plus jittered exponential backoff, so that many clients turned away by a warming server
 * neither come back all at once nor sooner than asked.
 */
export function retryDelay(err: unknown, attempt: number, minMs: number, maxMs: number): number {
  const floor = err instanceof ApiError && err.retryAfter ? err.retryAfter * 1000 : 0;
  return floor + backoffDelay(attempt, minMs, maxMs);
}

/**
 * A live view of the workspace: registers a queue, follows it (long-poll or WebSocket), applies
 * every event to one store, resumes after a dropped connection with the same `last_event_id`, and
 * re-registers (with jittered exponential backoff) when the server says the queue is gone.
 */
export class ConcordClient {
  state: ClientState | null = null;
  private queueId: string | null = null;
  private lastEventId = -1;
  private running = false;
  private abort: AbortController | null = null;
  private socket: SocketLike | null = null;
  private readonly f: typeof fetch;

  constructor(private readonly opts: ClientOptions) {
    // Bound: a browser refuses `fetch` called as a method of another object ("Illegal invocation").
    this.f = opts.fetch ?? fetch.bind(globalThis);
  }

  /** Calls the API with Basic auth; resolves with the success body or throws {@link ApiError}. */
  async call<T = Record<string, unknown>>(
    method: string,
    path: string,
    params: Record<string, unknown> = {},
    signal?: AbortSignal,
  ): Promise<T> {
    return apiRequest<T>(
      { baseUrl: this.opts.baseUrl, email: this.opts.email, apiKey: this.opts.apiKey, fetch: this.f },
      method,
      path,
      params,
      signal,
    );
  }

  /** Registers and follows events until {@link stop}. Resolves once the first register succeeded. */
  async start(): Promise<void> {
    this.running = true;
    this.opts.onStatus?.('connecting');
    await this.registerWithRetry();
    void this.loop();
  }

  /** Stops following events and deletes the queue. */
  async stop(): Promise<void> {
    this.running = false;
    this.abort?.abort();
    this.socket?.close(1000, 'client stopped');
    this.opts.onStatus?.('stopped');
    if (this.queueId) await this.call('DELETE', '/events', { queue_id: this.queueId }).catch(() => {});
  }

  private async register(): Promise<void> {
    const body = registerResponseSchema.parse(
      await this.call('POST', '/register', {
        event_types: this.opts.eventTypes ?? ['realm_user', 'subscription', 'stream'],
        include_subscribers: 'true',
        client_gravatar: false,
      }),
    );
    this.applyRegister(body as RegisterResponse);
  }

  /** Replaces the store with a register response (exposed for tests and server-side checks). */
  applyRegister(body: RegisterResponse): void {
    this.queueId = body.queue_id;
    this.lastEventId = body.last_event_id;
    this.state = stateFromRegister(body);
    this.opts.onState?.(this.state);
  }

  private async registerWithRetry(): Promise<void> {
    const { minMs, maxMs } = this.opts.backoff ?? { minMs: 250, maxMs: 30_000 };
    for (let attempt = 0; this.running; attempt++) {
      try {
        await this.register();
        this.opts.onStatus?.('live');
        return;
      } catch (err) {
        if (err instanceof ApiError && err.status < 500 && err.status !== 429) throw err;
        this.opts.onStatus?.('reconnecting');
        const wait = retryDelay(err, attempt, minMs, maxMs);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private async loop(): Promise<void> {
    const { minMs, maxMs } = this.opts.backoff ?? { minMs: 250, maxMs: 30_000 };
    let failures = 0;
    const connected = () => {
      failures = 0;
      this.opts.onStatus?.('live');
    };
    while (this.running) {
      try {
        if (this.opts.transport === 'websocket') await this.followSocket(connected);
        else await this.pollOnce(connected);
      } catch (err) {
        if (!this.running) return;
        this.opts.onStatus?.('reconnecting');
        if (err instanceof ApiError && err.code === 'BAD_EVENT_QUEUE_ID') {
          // The queue is gone (expired, ended, or the server lost it): start over from a snapshot.
          await this.registerWithRetry().catch(() => {});
          continue;
        }
        await new Promise((r) => setTimeout(r, backoffDelay(failures++, minMs, maxMs)));
      }
    }
  }

  /** One long poll: acknowledges what was applied and applies what comes back. */
  private async pollOnce(connected: () => void): Promise<void> {
    this.abort = new AbortController();
    const body = await this.call<{ events: unknown[] }>(
      'GET',
      '/events',
      { queue_id: this.queueId, last_event_id: this.lastEventId },
      this.abort.signal,
    );
    connected();
    this.applyEvents(body.events.map((e) => eventSchema.parse(e) as ZulipEvent));
  }

  /**
   * Follows the queue over one WebSocket from the last applied event until the connection ends:
   * rejects with the server's {@link ApiError} (BAD_EVENT_QUEUE_ID: register again) or with a
   * plain error when the connection dropped (resume after a backoff).
   */
  private followSocket(connected: () => void): Promise<void> {
    const base = this.opts.baseUrl.replace(/^http/, 'ws');
    const url = `${base}/api/v1/events/socket?${new URLSearchParams({
      queue_id: this.queueId ?? '',
      last_event_id: String(this.lastEventId),
    })}`;
    const headers = { authorization: `Basic ${btoa(`${this.opts.email}:${this.opts.apiKey}`)}` };
    const open =
      this.opts.webSocket ??
      ((u: string) =>
        new (globalThis as unknown as { WebSocket: new (u: string) => SocketLike }).WebSocket(u));
    return new Promise((resolve, reject) => {
      const socket = open(url, headers);
      this.socket = socket;
      let failure: Error | null = null;
      let ackTimer: ReturnType<typeof setTimeout> | null = null;
      socket.addEventListener('open', connected);
      socket.addEventListener('message', ({ data }) => {
        try {
          const msg = JSON.parse(String(data)) as {
            events?: unknown[];
            result?: string;
            code?: string;
            msg?: string;
          };
          if (msg.result === 'error') {
            failure = new ApiError(400, msg.code ?? 'BAD_REQUEST', msg.msg ?? 'event socket error');
            return;
          }
          if (!msg.events) return; // heartbeat
          this.applyEvents(msg.events.map((e) => eventSchema.parse(e) as ZulipEvent));
          ackTimer ??= setTimeout(() => {
            ackTimer = null;
            if (socket.readyState === 1) socket.send(JSON.stringify({ ack: this.lastEventId }));
          }, this.opts.ackDelayMs ?? 100);
        } catch (err) {
          failure = err instanceof Error ? err : new Error(String(err));
          socket.close(1003, 'bad message');
        }
      });
      socket.addEventListener('error', () => {});
      socket.addEventListener('close', ({ code, reason }) => {
        if (ackTimer) clearTimeout(ackTimer);
        if (this.socket === socket) this.socket = null;
        if (!this.running) return resolve();
        reject(failure ?? new Error(`event socket closed (${code}${reason ? `: ${reason}` : ''})`));
      });
    });
  }

  /** Applies a batch of events in order (exposed for tests). */
  applyEvents(events: ZulipEvent[]): void {
    if (!this.state) return;
    for (const event of events) {
      if (event.id <= this.lastEventId && event.type !== 'heartbeat') continue;
      this.opts.onEvent?.(event);
      applyEvent(this.state, event);
      this.lastEventId = Math.max(this.lastEventId, event.id);
    }
    this.opts.onState?.(this.state);
  }
}
