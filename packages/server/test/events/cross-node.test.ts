import { applyEvent, normalizeState, stateFromRegister } from '@concord/client';
import type { ClientState, RegisterResponse, ZulipEvent } from '@concord/client';
import { afterEach, describe, expect, it } from 'vitest';
import { backends, freshDatabase } from '../support/backends.js';
import type { ServerProcess } from '../support/process.js';
import { apiAs, createUserCli, serverEnv, spawnServer } from '../support/process.js';

const running: ServerProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.kill()));
});

const registerParams = { include_subscribers: 'true' };

/**
 * A queue registered through node A is polled through node B, node A is killed and restarted, and
 * the client, polling wherever it can, receives every event once, in order: the state its reducer
 * builds is the state a fresh register shows.
 */
describe.runIf(backends().includes('postgres'))('event queues across nodes (PostgreSQL)', () => {
  it('survives polling through another node and the restart of the node that created it', async () => {
    const db = await freshDatabase('postgres');
    // Nodes behind one load balancer share the external URL that avatar URLs are built from.
    const env = serverEnv(db, { CONCORD_EXTERNAL_URL: 'http://concord.test' });
    try {
      const owner = await createUserCli(env, {
        email: 'owner@example.com',
        fullName: 'Owner',
        role: 'owner',
      });
      const bob = await createUserCli(env, { email: 'bob@example.com', fullName: 'Bob', role: 'member' });
      let a = await spawnServer(env);
      const b = await spawnServer(env);
      running.push(a, b);
      const ownerAt = (url: string) => apiAs(url, 'owner@example.com', owner.api_key);
      const bobAt = (url: string) => apiAs(url, 'bob@example.com', bob.api_key);

      const reg = await bobAt(a.url)('POST', '/register', registerParams);
      expect(reg.status).toBe(200);
      const queueId = reg.body.queue_id as string;
      const state: ClientState = stateFromRegister(reg.body as RegisterResponse);
      let last = reg.body.last_event_id as number;
      const ids: number[] = [];
      const kinds: string[] = [];
      /** Everything pending through `url`; returns how many events arrived. */
      const pollVia = async (url: string): Promise<number> => {
        const res = await bobAt(url)('GET', '/events', {
          queue_id: queueId,
          last_event_id: last,
          dont_block: true,
        });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        for (const e of res.body.events as ZulipEvent[]) {
          if (e.type === 'heartbeat') continue;
          ids.push(e.id);
          kinds.push(`${e.type}:${(e as { op?: string }).op}`);
          applyEvent(state, e);
          last = e.id;
        }
        return res.body.events.length;
      };
      const fresh = async (url: string) => {
        const r = await bobAt(url)('POST', '/register', registerParams);
        await bobAt(url)('DELETE', '/events', { queue_id: r.body.queue_id });
        return normalizeState(stateFromRegister(r.body as RegisterResponse));
      };

      // Changes made through A, polled through B.
      await ownerAt(a.url)('POST', '/users/me/subscriptions', {
        subscriptions: [{ name: 'one' }],
        principals: [owner.user_id, bob.user_id],
      });
      await ownerAt(a.url)('PATCH', `/users/${owner.user_id}`, { full_name: 'Owner Renamed' });
      await until(async () => (await pollVia(b.url), kinds.includes('realm_user:update')));
      expect(normalizeState(state)).toEqual(await fresh(b.url));

      // A dies in the middle of a long-poll; a change made through B while A is down; A restarts
      // and the client polls A again.
      const pending = bobAt(a.url)('GET', '/events', { queue_id: queueId, last_event_id: last }).then(
        () => 'answered',
        () => 'dropped',
      );
      await new Promise((r) => setTimeout(r, 300));
      await a.kill();
      expect(await pending).toBe('dropped');
      await ownerAt(b.url)('POST', '/users/me/subscriptions', {
        subscriptions: [{ name: 'two' }],
        principals: [bob.user_id],
      });
      a = await spawnServer(env);
      running.push(a);
      await ownerAt(a.url)('DELETE', '/users/me/subscriptions', { subscriptions: ['one'] });
      await until(async () => (await pollVia(a.url), kinds.includes('subscription:peer_remove')));
      expect(await pollVia(b.url)).toBe(0);

      // Every event once, in order, and nothing missing.
      expect(ids).toEqual(ids.map((_, i) => ids[0]! + i));
      expect(kinds).toEqual(
        expect.arrayContaining(['stream:create', 'subscription:add', 'subscription:peer_remove']),
      );
      expect(normalizeState(state)).toEqual(await fresh(a.url));
      expect(normalizeState(state)).toEqual(await fresh(b.url));
    } finally {
      await Promise.all(running.splice(0).map((s) => s.kill()));
      await db.cleanup();
    }
  }, 90_000);
});

async function until(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
