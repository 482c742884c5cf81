import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { backends } from '../support/backends.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

describe.each(backends())('channels and subscriptions on %s', (backend) => {
  let t: TestServer;
  let alice: Credentials;
  let bob: Credentials;
  let guest: Credentials;

  beforeAll(async () => {
    t = await startTestServer(backend);
    alice = await t.createUser({ fullName: 'Alice' });
    bob = await t.createUser({ fullName: 'Bob' });
    guest = await t.createUser({ fullName: 'Gus Guest', role: Role.GUEST });
  });
  afterAll(async () => {
    await t?.close();
  });

  const streamId = async (name: string, as: Credentials = t.owner) =>
    (await t.api('GET', '/get_stream_id', { as, query: { stream: name } })).body.stream_id as number;

  it('creates a channel by subscribing, and subscribes others by id or e-mail', async () => {
    const res = await t.api('POST', '/users/me/subscriptions', {
      as: alice,
      form: { subscriptions: [{ name: 'design', description: 'Pixels' }], principals: [alice.id, bob.email] },
    });
    expect(res.body).toMatchObject({
      result: 'success',
      subscribed: { [alice.id]: ['design'], [bob.id]: ['design'] },
    });
    const again = await t.api('POST', '/users/me/subscriptions', {
      as: alice,
      form: { subscriptions: [{ name: 'Design' }] },
    });
    expect(again.body.already_subscribed).toEqual({ [alice.id]: ['design'] });

    const id = await streamId('design');
    const members = await t.api('GET', `/streams/${id}/members`, { as: bob });
    expect(members.body.subscribers).toEqual([alice.id, bob.id]);
    const stream = await t.api('GET', `/streams/${id}`, { as: bob });
    expect(stream.body.stream).toMatchObject({
      name: 'design',
      description: 'Pixels',
      invite_only: false,
      subscriber_count: 2,
    });
    const subs = await t.api('GET', '/users/me/subscriptions', {
      as: bob,
      query: { include_subscribers: 'true' },
    });
    expect(
      subs.body.subscriptions.map((s: { name: string; subscribers: number[] }) => [s.name, s.subscribers]),
    ).toEqual([['design', [alice.id, bob.id]]]);
    expect(
      (await t.api('GET', `/users/${bob.id}/subscriptions/${id}`, { as: alice })).body.is_subscribed,
    ).toBe(true);
  });

  it('hides private channels from non-subscribers but not from administrators', async () => {
    await t.api('POST', '/users/me/subscriptions', {
      as: alice,
      form: { subscriptions: [{ name: 'secret' }], invite_only: true },
    });
    const id = await streamId('secret', alice);
    expect((await t.api('GET', `/streams/${id}`, { as: bob })).body.code).toBe('STREAM_DOES_NOT_EXIST');
    expect((await t.api('GET', `/streams/${id}/members`, { as: bob })).status).toBe(400);
    const bobList = (await t.api('GET', '/streams', { as: bob })).body.streams.map(
      (s: { name: string }) => s.name,
    );
    expect(bobList).not.toContain('secret');
    const join = await t.api('POST', '/users/me/subscriptions', {
      as: bob,
      form: { subscriptions: [{ name: 'secret' }] },
    });
    expect(join.body.msg).toMatch(/Unable to access channel/);
    const ownerList = await t.api('GET', '/streams', { query: { include_all_active: true } });
    expect(ownerList.body.streams.map((s: { name: string }) => s.name)).toContain('secret');
  });

  it('lets guests see only their own channels and not create any', async () => {
    const list = (await t.api('GET', '/streams', { as: guest })).body.streams;
    expect(list).toEqual([]);
    const create = await t.api('POST', '/users/me/subscriptions', {
      as: guest,
      form: { subscriptions: [{ name: 'guests' }] },
    });
    expect(create.status).toBe(400);
    await t.api('POST', '/users/me/subscriptions', {
      as: alice,
      form: { subscriptions: [{ name: 'design' }], principals: [guest.id] },
    });
    expect(
      (await t.api('GET', '/streams', { as: guest })).body.streams.map((s: { name: string }) => s.name),
    ).toEqual(['design']);
  });

  it('renames, re-describes, makes private and archives a channel (administrators only)', async () => {
    await t.api('POST', '/users/me/subscriptions', { as: bob, form: { subscriptions: [{ name: 'ops' }] } });
    const id = await streamId('ops');
    expect(
      (await t.api('PATCH', `/streams/${id}`, { as: bob, form: { new_name: 'operations' } })).status,
    ).toBe(400);
    const patch = await t.api('PATCH', `/streams/${id}`, {
      form: { new_name: 'operations', description: 'Runbooks', is_private: true },
    });
    expect(patch.body).toEqual({ result: 'success', msg: '' });
    expect((await t.api('GET', `/streams/${id}`)).body.stream).toMatchObject({
      name: 'operations',
      description: 'Runbooks',
      invite_only: true,
    });
    expect((await t.api('DELETE', `/streams/${id}`)).status).toBe(200);
    const all = (await t.api('GET', '/streams', { query: { include_all_active: true } })).body.streams;
    expect(all.map((s: { name: string }) => s.name)).not.toContain('operations');
    // The archived channel freed its name.
    const again = await t.api('POST', '/users/me/subscriptions', {
      form: { subscriptions: [{ name: 'operations' }] },
    });
    expect(again.body.subscribed).toEqual({ [t.owner.id]: ['operations'] });
  });

  it('unsubscribes oneself, and others only as an administrator', async () => {
    const id = await streamId('design');
    const denied = await t.api('DELETE', '/users/me/subscriptions', {
      as: bob,
      form: { subscriptions: ['design'], principals: [alice.id] },
    });
    expect(denied.status).toBe(400);
    const self = await t.api('DELETE', '/users/me/subscriptions', {
      as: bob,
      form: { subscriptions: ['design'] },
    });
    expect(self.body).toMatchObject({ removed: ['design'], not_removed: [] });
    const twice = await t.api('DELETE', '/users/me/subscriptions', {
      as: bob,
      form: { subscriptions: ['design'] },
    });
    expect(twice.body).toMatchObject({ removed: [], not_removed: ['design'] });
    const byAdmin = await t.api('DELETE', '/users/me/subscriptions', {
      form: { subscriptions: ['design'], principals: [guest.id] },
    });
    expect(byAdmin.body.removed).toEqual(['design']);
    expect((await t.api('GET', `/streams/${id}/members`)).body.subscribers).toEqual([alice.id]);
  });

  it('drops deactivated users from member lists and restores them on reactivation', async () => {
    await t.api('POST', '/users/me/subscriptions', {
      as: alice,
      form: { subscriptions: [{ name: 'design' }], principals: [bob.id] },
    });
    const id = await streamId('design');
    await t.api('DELETE', `/users/${bob.id}`);
    expect((await t.api('GET', `/streams/${id}/members`)).body.subscribers).toEqual([alice.id]);
    await t.api('POST', `/users/${bob.id}/reactivate`);
    expect((await t.api('GET', `/streams/${id}/members`)).body.subscribers).toEqual([alice.id, bob.id]);
  });

  it('records every mutation in the change log, in order', async () => {
    const head = await t.server.log.head();
    await t.api('POST', '/users/me/subscriptions', {
      as: alice,
      form: { subscriptions: [{ name: 'log-check' }] },
    });
    const changes = await t.server.log.readSince(head);
    expect(changes.map((c) => c.kind)).toEqual(['stream.created', 'subscription.added']);
    expect(changes.map((c) => c.seq)).toEqual([head + 1, head + 2]);
  });
});
