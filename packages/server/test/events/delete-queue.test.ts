import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

/*
 * DELETE /events ends a long-poll waiting on that queue at once with BAD_EVENT_QUEUE_ID, rather than
 * at its next heartbeat (45 s and more by default): a client that deleted its queue, or whose queue
 * an administrator's action ended, learns it immediately.
 */
describe('deleting a queue that a long-poll waits on', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite');
  });
  afterAll(async () => t?.close());

  it('answers the waiting poll BAD_EVENT_QUEUE_ID', async () => {
    const r = await t.api('POST', '/register', { form: { event_types: ['realm_user'] } });
    const queueId = r.body.queue_id as string;
    const waiting = t.api('GET', '/events', {
      query: { queue_id: queueId, last_event_id: r.body.last_event_id },
    });
    await new Promise((res) => setTimeout(res, 300));
    expect((await t.api('DELETE', '/events', { form: { queue_id: queueId } })).status).toBe(200);
    const answer = await waiting;
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ result: 'error', code: 'BAD_EVENT_QUEUE_ID', queue_id: queueId });
  }, 30_000);
});
