import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import zulip from 'zulip-js';
import type { ZulipClient } from 'zulip-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { backends, freshDir } from '../support/backends.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

/**
 * Concord driven by the unmodified `zulip-js` package, used as a Zulip bot would use it. zulip-js
 * sends POST parameters as multipart/form-data (arrays JSON-encoded, everything else as is), and
 * GET, PATCH and DELETE parameters in the query string (arrays comma-joined by URLSearchParams).
 * Endpoints it has no helper for go through its generic `callEndpoint(path, method, params)`.
 */

interface ZulipEvent {
  id: number;
  type: string;
  op?: string;
  [key: string]: unknown;
}

const byId = (a: number, b: number) => a - b;

describe.each(backends())('zulip-js against Concord on %s', (backend) => {
  let t: TestServer;
  let admin: Credentials;
  let alice: Credentials;
  let watcher: Credentials;
  /** The bot's client: an administrator that logs in with e-mail and password. */
  let bot: ZulipClient;
  const dir = freshDir('concord-zulip-js-');

  beforeAll(async () => {
    // Long polls that find nothing end quickly, so a missing event fails the test instead of hanging it.
    t = await startTestServer(backend, { CONCORD_EVENT_LONGPOLL_SECONDS: '4' });
    admin = await t.createUser({ fullName: 'Admin Bot', role: Role.ADMINISTRATOR, password: 'admin-bot-pw' });
    alice = await t.createUser({ fullName: 'Alice', password: 'alice-pw' });
    watcher = await t.createUser({ fullName: 'Watcher Bot', password: 'watcher-pw' });
    bot = await zulip({ username: admin.email, password: 'admin-bot-pw', realm: t.url });
  });
  afterAll(async () => {
    await t?.close();
    dir.remove();
  });

  it('fetches an API key with username and password (issue 2)', async () => {
    // zulip() itself POSTed /fetch_api_key (multipart) and kept the key it got.
    expect(bot.config.apiKey).toBe(admin.apiKey);
    expect(await bot.accounts.retrieve()).toEqual({
      result: 'success',
      msg: '',
      api_key: admin.apiKey,
      email: admin.email,
      user_id: admin.id,
    });
    expect(await bot.users.me.getProfile()).toMatchObject({
      result: 'success',
      user_id: admin.id,
      full_name: 'Admin Bot',
      role: Role.ADMINISTRATOR,
    });
    // Negative control: a wrong password yields no key, and the key-less client is refused.
    const wrong = await zulip({ username: watcher.email, password: 'not-the-password', realm: t.url });
    expect(wrong.config.apiKey).toBeUndefined();
    expect(await wrong.users.me.getProfile()).toMatchObject({ result: 'error' });
  });

  it('lists users, creates a channel, subscribes others, lists members, deactivates and reactivates (issue 2)', async () => {
    const all = await bot.users.retrieve();
    expect(all.result).toBe('success');
    const people = new Map<number, { email: string; full_name: string; is_active: boolean; role: number }>(
      all.members.map((m: { user_id: number }) => [m.user_id, m]),
    );
    expect([...people.keys()].sort(byId)).toEqual([t.owner.id, admin.id, alice.id, watcher.id].sort(byId));
    expect(people.get(alice.id)).toMatchObject({
      email: alice.email,
      full_name: 'Alice',
      is_active: true,
      role: Role.MEMBER,
    });
    // An array in a GET query string arrives comma-joined: user_ids=3,4.
    const some = await bot.users.retrieve({ user_ids: [alice.id, watcher.id] });
    expect(some.members.map((m: { user_id: number }) => m.user_id).sort(byId)).toEqual(
      [alice.id, watcher.id].sort(byId),
    );

    const created = await bot.users.me.subscriptions.add({
      subscriptions: [{ name: 'bot-lab', description: 'Where bots test' }],
    });
    expect(created).toEqual({
      result: 'success',
      msg: '',
      subscribed: { [admin.id]: ['bot-lab'] },
      already_subscribed: {},
    });
    const invited = await bot.users.me.subscriptions.add({
      subscriptions: [{ name: 'bot-lab' }],
      principals: [alice.id, watcher.email],
    });
    expect(invited).toEqual({
      result: 'success',
      msg: '',
      subscribed: { [alice.id]: ['bot-lab'], [watcher.id]: ['bot-lab'] },
      already_subscribed: {},
    });
    const again = await bot.users.me.subscriptions.add({ subscriptions: [{ name: 'bot-lab' }] });
    expect(again.already_subscribed).toEqual({ [admin.id]: ['bot-lab'] });

    // Multipart field values are UTF-8; so are query-string values.
    const unicode = await bot.users.me.subscriptions.add({
      subscriptions: [{ name: 'café ☕ 日本', description: 'naïve — «quoted» 🎉' }],
    });
    expect(unicode.subscribed).toEqual({ [admin.id]: ['café ☕ 日本'] });
    const cafe = await bot.streams.getStreamId('café ☕ 日本');
    expect(cafe.result).toBe('success');
    expect((await bot.callEndpoint(`/streams/${cafe.stream_id}`, 'GET')).stream).toMatchObject({
      name: 'café ☕ 日本',
      description: 'naïve — «quoted» 🎉',
    });
    // zulip-js's documented way to unsubscribe: DELETE parameters in the query string, JSON-encoded by the bot.
    expect(
      await bot.users.me.subscriptions.remove({ subscriptions: JSON.stringify(['café ☕ 日本']) }),
    ).toEqual({ result: 'success', msg: '', removed: ['café ☕ 日本'], not_removed: [] });

    const found = await bot.streams.getStreamId('bot-lab');
    expect(found).toMatchObject({ result: 'success', stream_id: expect.any(Number) });
    const streamId = found.stream_id as number;
    const membersOf = async (): Promise<number[]> => {
      const res = await bot.callEndpoint(`/streams/${streamId}/members`, 'GET');
      expect(res.result).toBe('success');
      return [...(res.subscribers as number[])].sort(byId);
    };
    expect(await membersOf()).toEqual([admin.id, alice.id, watcher.id].sort(byId));
    const subs = await bot.streams.subscriptions.retrieve();
    expect(subs.subscriptions).toEqual([
      expect.objectContaining({ stream_id: streamId, name: 'bot-lab', description: 'Where bots test' }),
    ]);

    // PATCH parameters travel in the query string.
    expect(await bot.callEndpoint(`/users/${alice.id}`, 'PATCH', { full_name: 'Alice A.' })).toEqual({
      result: 'success',
      msg: '',
    });
    expect((await bot.callEndpoint(`/users/${alice.id}`, 'GET')).user.full_name).toBe('Alice A.');

    const asAlice = await zulip({ username: alice.email, password: 'alice-pw', realm: t.url });
    expect((await asAlice.users.me.getProfile()).user_id).toBe(alice.id);

    expect(await bot.callEndpoint(`/users/${alice.id}`, 'DELETE')).toEqual({ result: 'success', msg: '' });
    expect((await bot.callEndpoint(`/users/${alice.id}`, 'GET')).user).toMatchObject({
      user_id: alice.id,
      is_active: false,
    });
    const listed = await bot.users.retrieve({ user_ids: [alice.id] });
    expect(listed.members).toEqual([expect.objectContaining({ user_id: alice.id, is_active: false })]);
    // Zulip lists only active subscribers.
    expect(await membersOf()).toEqual([admin.id, watcher.id].sort(byId));
    // Zulip keeps the key and answers USER_DEACTIVATED, which clients tell apart from a bad key.
    expect(await asAlice.users.me.getProfile()).toEqual({
      result: 'error',
      msg: 'Account is deactivated',
      code: 'USER_DEACTIVATED',
    });
    // A deactivated user cannot log in again.
    expect(await asAlice.accounts.retrieve()).toMatchObject({ result: 'error', code: 'USER_DEACTIVATED' });

    // A POST with no parameters: zulip-js still sends an (empty) multipart body.
    expect(await bot.callEndpoint(`/users/${alice.id}/reactivate`, 'POST')).toEqual({
      result: 'success',
      msg: '',
    });
    expect((await bot.callEndpoint(`/users/${alice.id}`, 'GET')).user.is_active).toBe(true);
    expect(await membersOf()).toEqual([admin.id, alice.id, watcher.id].sort(byId));
    // The client configured before deactivation works again with its key, as with Zulip.
    expect(await asAlice.users.me.getProfile()).toMatchObject({ result: 'success', user_id: alice.id });
    const back = await zulip({ username: alice.email, password: 'alice-pw', realm: t.url });
    expect(back.config.apiKey).toBe(asAlice.config.apiKey);
  });

  it('long-polls peer_remove for every shared channel before is_active:false, and peer_add back (issue 3)', async () => {
    const mate = await t.createUser({ fullName: 'Mate', password: 'mate-pw' });
    const ids: Record<string, number> = {};
    const create = async (name: string, principals: number[], extra: Record<string, string> = {}) => {
      const res = await bot.users.me.subscriptions.add({ subscriptions: [{ name }], principals, ...extra });
      expect(Object.keys(res.subscribed).map(Number).sort(byId)).toEqual([...principals].sort(byId));
      ids[name] = (await bot.streams.getStreamId(name)).stream_id as number;
    };
    await create('ops', [mate.id, watcher.id]);
    await create('standup', [mate.id, watcher.id, admin.id]);
    // Public: the watcher is not in it but, as a member, may see its subscribers (Zulip sends it too).
    await create('town-square', [mate.id]);
    // Negative controls: a private channel the watcher is not in, and a channel without the mate.
    // zulip-js passes non-array values to FormData as they are, so a bot sends booleans as strings.
    await create('back-room', [mate.id], { invite_only: 'true' });
    await create('quiet', [watcher.id]);

    // The watcher is configured as bots usually are: a zuliprc file with its e-mail and API key.
    const rc = join(dir.dir, 'zuliprc');
    writeFileSync(rc, `[api]\nemail=${watcher.email}\nkey=${watcher.apiKey}\nsite=${t.url}\n`);
    const w = await zulip({ zuliprc: rc });
    expect((await w.users.me.getProfile()).user_id).toBe(watcher.id);
    const reg = await w.queues.register({ event_types: ['subscription', 'realm_user'] });
    expect(reg).toMatchObject({ result: 'success', queue_id: expect.any(String) });
    expect(typeof reg.last_event_id).toBe('number');
    let lastEventId = reg.last_event_id as number;

    /** Long-polls as zulip-js's own callOnEachEvent does, until `done` holds for what arrived. */
    const pollUntil = async (done: (events: ZulipEvent[]) => boolean): Promise<ZulipEvent[]> => {
      const seen: ZulipEvent[] = [];
      for (let i = 0; i < 10 && !done(seen); i++) {
        const res = await w.events.retrieve({
          queue_id: reg.queue_id,
          last_event_id: lastEventId,
          dont_block: false,
        });
        expect(res.result).toBe('success');
        for (const e of res.events as ZulipEvent[]) {
          // Heartbeats take ids like any event (Zulip queues them), so every id is new.
          expect(e.id).toBeGreaterThan(lastEventId);
          lastEventId = e.id;
          if (e.type !== 'heartbeat') seen.push(e);
        }
      }
      return seen;
    };
    const isActiveUpdate = (e: ZulipEvent, active: boolean) =>
      e.type === 'realm_user' &&
      e.op === 'update' &&
      (e.person as { user_id: number; is_active?: boolean }).user_id === mate.id &&
      (e.person as { is_active?: boolean }).is_active === active;
    const peerStreams = (events: ZulipEvent[], op: string) => {
      const peers = events.filter((e) => e.type === 'subscription' && e.op === op);
      for (const e of peers) {
        expect(e.user_ids).toEqual([mate.id]);
        expect(e).not.toHaveProperty('stream_id');
        expect(e).not.toHaveProperty('user_id');
      }
      return peers.flatMap((e) => e.stream_ids as number[]).sort(byId);
    };
    const expected = [ids.ops!, ids.standup!, ids['town-square']!].sort(byId);

    expect(await bot.callEndpoint(`/users/${mate.id}`, 'DELETE')).toEqual({ result: 'success', msg: '' });
    const off = await pollUntil((es) => es.some((e) => isActiveUpdate(e, false)));
    const update = off.findIndex((e) => isActiveUpdate(e, false));
    expect(update).toBeGreaterThanOrEqual(0);
    expect(off[update]!.person).toEqual({ user_id: mate.id, is_active: false });
    // Every peer_remove comes before the update; together they name exactly the mate's channels the
    // watcher may see: the two it shares and the public one, not the private one nor any other.
    expect(peerStreams(off.slice(0, update), 'peer_remove')).toEqual(expected);
    expect(peerStreams(off.slice(update + 1), 'peer_remove')).toEqual([]);
    expect(off.filter((e) => e.type === 'subscription' && e.op !== 'peer_remove')).toEqual([]);

    expect(await bot.callEndpoint(`/users/${mate.id}/reactivate`, 'POST')).toEqual({
      result: 'success',
      msg: '',
    });
    const on = await pollUntil(
      (es) =>
        es.some((e) => isActiveUpdate(e, true)) && peerStreams(es, 'peer_add').length >= expected.length,
    );
    expect(on.find((e) => isActiveUpdate(e, true))!.person).toEqual({ user_id: mate.id, is_active: true });
    expect(peerStreams(on, 'peer_add')).toEqual(expected);
    expect(peerStreams(on, 'peer_remove')).toEqual([]);

    // DELETE parameters travel in the query string too.
    expect(await w.queues.deregister({ queue_id: reg.queue_id })).toEqual({ result: 'success', msg: '' });
    const gone = await w.events.retrieve({ queue_id: reg.queue_id, last_event_id: lastEventId });
    expect(gone).toMatchObject({ result: 'error', code: 'BAD_EVENT_QUEUE_ID', queue_id: reg.queue_id });
  });

  // Zulip queues a heartbeat like any event, with the next id (zerver/tornado/event_queue.py
  // add_event), and the spec says ids increase. The id is written with the queue's checkpoint
  // before the heartbeat is sent, so no later event, on any node or after a restart, reuses it.
  it('gives an idle long poll a heartbeat with a new, higher event id (Zulip: heartbeats are queued events)', async () => {
    const reg = await bot.queues.register({ event_types: ['realm_user'] });
    const res = await bot.events.retrieve({ queue_id: reg.queue_id, last_event_id: reg.last_event_id });
    expect(res.events).toEqual([{ type: 'heartbeat', id: expect.any(Number) }]);
    expect(res.events[0].id).toBeGreaterThan(reg.last_event_id);
    // A second idle poll acknowledging the heartbeat gets a newer one; then a real event comes
    // after both, and a poll that ignored the heartbeat ids still gets it.
    const again = await bot.events.retrieve({ queue_id: reg.queue_id, last_event_id: res.events[0].id });
    expect(again.events).toEqual([{ type: 'heartbeat', id: res.events[0].id + 1 }]);
    await bot.callEndpoint(`/users/${alice.id}`, 'PATCH', { full_name: 'Alice Heartbeat' });
    const real = await bot.events.retrieve({ queue_id: reg.queue_id, last_event_id: again.events[0].id });
    expect(real.events).toEqual([
      expect.objectContaining({ type: 'realm_user', op: 'update', id: again.events[0].id + 1 }),
    ]);
    const ignoring = await bot.events.retrieve({ queue_id: reg.queue_id, last_event_id: reg.last_event_id });
    expect(ignoring.events).toEqual([real.events[0]]);
  });
});
