import { describe, expect, it } from 'vitest';
import { backends, freshDatabase } from '../support/backends.js';
import type { ServerProcess } from '../support/process.js';
import { apiAs, createUserCli, serverEnv, spawnServer } from '../support/process.js';

type Event = { id: number; type: string; op?: string };

/**
 * Heartbeats take event ids like Zulip's queued heartbeats, and the id is written before the
 * heartbeat is sent: a node killed right after answering, or another node that held an older copy
 * of the queue, never gives a later event the same id (the client, having acknowledged it, would
 * never see that event).
 */
// Both backends at once: each case mostly waits for server processes to start.
describe.concurrent.each(backends())('heartbeat ids on %s', (backend) => {
  it('are new, and never reused after a kill -9 or by another node holding the queue', async () => {
    const db = await freshDatabase(backend);
    const env = serverEnv(db, { CONCORD_EVENT_LONGPOLL_SECONDS: '2' });
    // Per test: the two backends run at once, and each kills only its own servers.
    const running: ServerProcess[] = [];
    try {
      const owner = await createUserCli(env, {
        email: 'owner@example.com',
        fullName: 'Owner',
        role: 'owner',
      });
      const bob = await createUserCli(env, { email: 'bob@example.com', fullName: 'Bob', role: 'member' });
      const a = await spawnServer(env);
      running.push(a);
      // On PostgreSQL a second node reads the queue before the heartbeat, so it holds a copy
      // that does not know of it; on SQLite (one process per file) the restarted node reads it.
      const b = backend === 'postgres' ? await spawnServer(env) : null;
      if (b) running.push(b);
      const bobAt = (url: string) => apiAs(url, 'bob@example.com', bob.api_key);

      const reg = await bobAt(a.url)('POST', '/register', { event_types: ['realm_user'] });
      const queueId = reg.body.queue_id as string;
      if (b) {
        const early = await bobAt(b.url)('GET', '/events', {
          queue_id: queueId,
          last_event_id: -1,
          dont_block: true,
        });
        expect(early.body.events).toEqual([]);
      }
      const idle = await bobAt(a.url)('GET', '/events', { queue_id: queueId, last_event_id: -1 });
      expect(idle.status).toBe(200);
      expect(idle.body.events).toEqual([{ type: 'heartbeat', id: 0 }]);
      // Killed at once: anything not written before the answer is lost.
      await a.kill();

      const next = b ?? (await spawnServer(env));
      if (!b) running.push(next);
      await apiAs(next.url, 'owner@example.com', owner.api_key)('PATCH', `/users/${owner.user_id}`, {
        full_name: 'Owner Renamed',
      });
      let events: Event[] = [];
      for (let i = 0; i < 10 && !events.some((e) => e.type === 'realm_user'); i++) {
        const res = await bobAt(next.url)('GET', '/events', { queue_id: queueId, last_event_id: 0 });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        events = res.body.events as Event[];
      }
      expect(events).toEqual([expect.objectContaining({ type: 'realm_user', op: 'update', id: 1 })]);
    } finally {
      await Promise.all(running.splice(0).map((s) => s.kill()));
      await db.cleanup();
    }
  }, 60_000);
});
