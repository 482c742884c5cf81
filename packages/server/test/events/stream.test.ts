import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { backends } from '../support/backends.js';
import { zulipContract } from '../support/openapi.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

type Event = { id: number; type: string; [k: string]: unknown };

const basic = (c: Credentials) => `Basic ${Buffer.from(`${c.email}:${c.apiKey}`).toString('base64')}`;

/** Reads an SSE response until `count` events arrived (or the stream ends); then drops it. */
async function readSse(
  url: string,
  who: Credentials,
  count: number,
  lastEventId?: number,
): Promise<{ events: Event[]; errors: unknown[] }> {
  const abort = new AbortController();
  const headers: Record<string, string> = { authorization: basic(who) };
  if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
  const res = await fetch(url, { headers, signal: abort.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const events: Event[] = [];
  const errors: unknown[] = [];
  try {
    while (events.length < count && errors.length === 0) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((l) => !l.startsWith(':') && l.includes(':'))
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
        );
        if (fields.event === 'error') errors.push(JSON.parse(fields.data!));
        else if (fields.data) {
          const e = JSON.parse(fields.data) as Event;
          expect(fields.id).toBe(String(e.id));
          events.push(e);
        }
      }
    }
  } finally {
    abort.abort();
  }
  return { events: events.slice(0, count), errors };
}

/** Opens a WebSocket on a queue; collects events and acknowledges each batch. */
function openSocket(url: string, who: Credentials) {
  const ws = new WebSocket(url, { headers: { authorization: basic(who) } });
  const events: Event[] = [];
  const messages: Record<string, unknown>[] = [];
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as { events?: Event[] };
    messages.push(msg);
    if (msg.events) {
      events.push(...msg.events);
      ws.send(JSON.stringify({ ack: msg.events[msg.events.length - 1]!.id }));
    }
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  return { ws, events, messages, closed };
}

async function until(check: () => boolean, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.each(backends())('event streams (SSE and WebSocket) on %s', (backend) => {
  let t: TestServer;
  let bob: Credentials;
  beforeAll(async () => {
    t = await startTestServer(backend);
    bob = await t.createUser({ email: 'bob@example.com', fullName: 'Bob' });
  });
  afterAll(async () => {
    await t?.close();
  });

  const register = async () => (await t.api('POST', '/register', { as: bob })).body.queue_id as string;
  const changes = async (tag: string) => {
    await t.api('POST', '/users/me/subscriptions', {
      form: { subscriptions: [{ name: `room-${tag}` }], principals: [t.owner.id, bob.id] },
    });
    await t.api('PATCH', `/users/${t.owner.id}`, { form: { full_name: `Owner ${tag}` } });
    await t.api('DELETE', '/users/me/subscriptions', { form: { subscriptions: [`room-${tag}`] } });
  };
  const longPoll = async (queueId: string, count: number) => {
    const out: Event[] = [];
    let last = -1;
    while (out.length < count) {
      const res = await t.api('GET', '/events', {
        as: bob,
        query: { queue_id: queueId, last_event_id: last },
      });
      for (const e of res.body.events as Event[]) {
        if (e.type === 'heartbeat') continue;
        out.push(e);
        last = e.id;
      }
    }
    return out;
  };

  it('delivers the same events with the same ids over long-poll, SSE and WebSocket', async () => {
    const [q1, q2, q3] = [await register(), await register(), await register()];
    const socket = openSocket(`${t.url.replace('http', 'ws')}/api/v1/events/socket?queue_id=${q3}`, bob);
    await new Promise((r) => socket.ws.once('open', r));
    await changes('a');
    const viaPoll = await longPoll(q1, 4);
    const viaSse = (await readSse(`${t.url}/api/v1/events/stream?queue_id=${q2}`, bob, viaPoll.length))
      .events;
    await until(() => socket.events.length >= viaPoll.length, 'WebSocket events');
    socket.ws.close();
    expect(viaPoll.map((e) => `${e.type}/${String(e.op)}`)).toEqual([
      'stream/create',
      'subscription/add',
      'realm_user/update',
      'subscription/peer_remove',
    ]);
    expect(viaSse).toEqual(viaPoll);
    expect(socket.events).toEqual(viaPoll);
    for (const e of viaSse) zulipContract().validateEvent(e);
  });

  it('resumes an SSE stream from Last-Event-ID after a dropped connection: nothing lost, nothing twice', async () => {
    const q = await register();
    await changes('b');
    const first = await readSse(`${t.url}/api/v1/events/stream?queue_id=${q}`, bob, 2);
    expect(first.events.map((e) => e.id)).toEqual([0, 1]);
    await changes('c');
    // The client had received 0 and 1 when the connection dropped; events 2.. are still queued.
    const resumed = await readSse(`${t.url}/api/v1/events/stream?queue_id=${q}`, bob, 6, 1);
    expect(resumed.events.map((e) => e.id)).toEqual([2, 3, 4, 5, 6, 7]);
    // Resuming from an id it no longer retains is refused with Zulip's error.
    const stale = await fetch(`${t.url}/api/v1/events/stream?queue_id=${q}`, {
      headers: { authorization: basic(bob), 'last-event-id': '0' },
    });
    expect(stale.status).toBe(400);
    expect(await stale.json()).toMatchObject({ result: 'error', code: 'BAD_EVENT_QUEUE_ID' });
  });

  it('resumes a WebSocket from last_event_id, and refuses an unknown queue on both transports', async () => {
    const q = await register();
    const a = openSocket(`${t.url.replace('http', 'ws')}/api/v1/events/socket?queue_id=${q}`, bob);
    await new Promise((r) => a.ws.once('open', r));
    await changes('d');
    await until(() => a.events.length >= 4, 'first WebSocket events');
    a.ws.terminate();
    await a.closed;
    await changes('e');
    const last = a.events.at(-1)!.id;
    const b = openSocket(
      `${t.url.replace('http', 'ws')}/api/v1/events/socket?queue_id=${q}&last_event_id=${last}`,
      bob,
    );
    await until(() => b.events.length >= 4, 'resumed WebSocket events');
    b.ws.close();
    expect([...a.events, ...b.events].map((e) => e.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);

    const sse = await fetch(`${t.url}/api/v1/events/stream?queue_id=nope`, {
      headers: { authorization: basic(bob) },
    });
    expect(sse.status).toBe(400);
    expect(await sse.json()).toMatchObject({ code: 'BAD_EVENT_QUEUE_ID' });
    const bad = openSocket(`${t.url.replace('http', 'ws')}/api/v1/events/socket?queue_id=nope`, bob);
    await bad.closed;
    expect(bad.messages).toEqual([expect.objectContaining({ result: 'error', code: 'BAD_EVENT_QUEUE_ID' })]);
  });

  it('requires authentication on both transports', async () => {
    const q = await register();
    const sse = await fetch(`${t.url}/api/v1/events/stream?queue_id=${q}`);
    expect(sse.status).toBe(401);
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/v1/events/socket?queue_id=${q}`);
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => {});
    });
    expect(status).toBe(401);
  });
});
