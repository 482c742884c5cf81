import { ConcordClient, normalizeState, stateFromRegister } from '@concord/client';
import type { RegisterResponse } from '@concord/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
    const fresh = async () => {
      const r = await t.api('POST', '/register', { form: { include_subscribers: 'true' } });
      await t.api('DELETE', '/events', { form: { queue_id: r.body.queue_id } });
      return normalizeState(stateFromRegister(r.body as RegisterResponse));
    };
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
});
