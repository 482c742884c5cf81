import { ConcordClient, normalizeState, stateFromRegister } from '@concord/client';
import type { RegisterResponse, SocketLike, ZulipEvent } from '@concord/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

/** The client package's event loop against a real server: live updates, and a lost queue. */
describe('ConcordClient', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite');
  });
  afterAll(async () => {
    await t?.close();
  });
  const fresh = async () => {
    const r = await t.api('POST', '/register', { form: { include_subscribers: 'true' } });
    await t.api('DELETE', '/events', { form: { queue_id: r.body.queue_id } });
    return normalizeState(stateFromRegister(r.body as RegisterResponse));
  };
  const queueIds = async () =>
    (await t.server.store.db.selectFrom('event_queues').select('id').execute()).map((q) => q.id);

  it('follows changes, and re-registers by itself when its queue is gone', async () => {
    const statuses: string[] = [];
    const client = new ConcordClient({
      baseUrl: t.url,
      email: t.owner.email,
      apiKey: t.owner.apiKey,
      backoff: { minMs: 20, maxMs: 200 },
      onStatus: (s) => statuses.push(s),
    });
    await client.start();
    const converged = async () => {
      const want = await fresh();
      await expect.poll(() => normalizeState(client.state!), { timeout: 10_000 }).toEqual(want);
    };
    try {
      await t.api('POST', '/users/me/subscriptions', { form: { subscriptions: [{ name: 'alpha' }] } });
      await converged();

      // The server loses the queue (deleted here; expiry does the same): the next poll gets
      // BAD_EVENT_QUEUE_ID and the client starts over from a new register, without help.
      const queues = (await t.server.store.db.selectFrom('event_queues').select('id').execute()).map(
        (q) => q.id,
      );
      expect(queues).toHaveLength(1);
      await t.api('DELETE', '/events', { form: { queue_id: queues[0]! } });
      await t.api('PATCH', `/users/${t.owner.id}`, { form: { full_name: 'Renamed While Lost' } });
      await expect
        .poll(
          async () =>
            (await t.server.store.db.selectFrom('event_queues').select('id').execute()).map((q) => q.id),
          {
            timeout: 10_000,
          },
        )
        .not.toContain(queues[0]);
      await converged();
      expect(client.state!.users.get(t.owner.id)!.full_name).toBe('Renamed While Lost');
      expect(statuses).toContain('reconnecting');
      expect(statuses.at(-1)).toBe('live');
    } finally {
      await client.stop();
    }
  });

  it('follows changes over a WebSocket, resumes after a dropped socket without loss, and re-registers when its queue is gone', async () => {
    const sockets: WebSocket[] = [];
    const events: ZulipEvent[] = [];
    const statuses: string[] = [];
    const client = new ConcordClient({
      baseUrl: t.url,
      email: t.owner.email,
      apiKey: t.owner.apiKey,
      transport: 'websocket',
      backoff: { minMs: 20, maxMs: 200 },
      webSocket: (url, headers) => {
        const ws = new WebSocket(url, { headers });
        sockets.push(ws);
        return ws as unknown as SocketLike;
      },
      onEvent: (e) => events.push(e),
      onStatus: (s) => statuses.push(s),
    });
    await client.start();
    const converged = async () => {
      const want = await fresh();
      await expect.poll(() => normalizeState(client.state!), { timeout: 10_000 }).toEqual(want);
    };
    try {
      await expect.poll(() => sockets.length).toBe(1);
      await t.api('POST', '/users/me/subscriptions', { form: { subscriptions: [{ name: 'ws-alpha' }] } });
      await converged();
      const [queue] = await queueIds();
      expect(events.length).toBeGreaterThan(0);

      // The connection drops; changes made meanwhile arrive on the next socket, on the same queue.
      sockets[0]!.terminate();
      await t.api('PATCH', `/users/${t.owner.id}`, { form: { full_name: 'Renamed While Dropped' } });
      await t.api('POST', '/users/me/subscriptions', { form: { subscriptions: [{ name: 'ws-beta' }] } });
      await converged();
      expect(sockets.length).toBeGreaterThanOrEqual(2);
      expect(await queueIds()).toEqual([queue]);
      // Every event once, in order, with no id skipped: nothing lost or applied twice on resume.
      const ids = events.map((e) => e.id);
      expect(ids).toEqual(ids.map((_, i) => ids[0]! + i));

      // The server loses the queue: the socket is told BAD_EVENT_QUEUE_ID and the client registers again.
      await t.api('DELETE', '/events', { form: { queue_id: queue! } });
      await t.api('PATCH', `/users/${t.owner.id}`, { form: { full_name: 'Renamed While Lost' } });
      await expect.poll(queueIds, { timeout: 10_000 }).not.toContain(queue);
      await converged();
      expect(client.state!.users.get(t.owner.id)!.full_name).toBe('Renamed While Lost');
      expect(statuses).toContain('reconnecting');
      expect(statuses.at(-1)).toBe('live');
    } finally {
      await client.stop();
    }
  });
});
