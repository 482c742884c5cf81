import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { backends } from '../support/backends.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

describe.each(backends())('users API on %s', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('creates, updates, deactivates and reactivates a user', async () => {
    const created = await t.api('POST', '/users', {
      form: { email: 'new@example.com', password: 'pw-123456', full_name: 'New Person' },
    });
    expect(created.status).toBe(200);
    const id = created.body.user_id as number;

    const patched = await t.api('PATCH', `/users/${id}`, {
      form: { full_name: 'Renamed Person', role: Role.ADMINISTRATOR },
    });
    expect(patched.body).toEqual({ result: 'success', msg: '' });
    const got = await t.api('GET', `/users/${id}`);
    expect(got.body.user).toMatchObject({
      user_id: id,
      full_name: 'Renamed Person',
      role: 200,
      is_admin: true,
      is_active: true,
    });

    const key = await t.api('POST', '/fetch_api_key', {
      as: null,
      form: { username: 'new@example.com', password: 'pw-123456' },
    });
    expect(key.status).toBe(200);
    const asNew = { id, email: 'new@example.com', apiKey: key.body.api_key as string, password: 'pw-123456' };
    expect((await t.api('GET', '/users/me', { as: asNew })).body.user_id).toBe(id);

    expect((await t.api('DELETE', `/users/${id}`)).status).toBe(200);
    // Deactivation revokes the key at once.
    const after = await t.api('GET', '/users/me', { as: asNew });
    expect(after.status).toBe(401);
    expect((await t.api('GET', `/users/new@example.com`)).body.user.is_active).toBe(false);
    const login = await t.api('POST', '/fetch_api_key', {
      as: null,
      form: { username: 'new@example.com', password: 'pw-123456' },
    });
    expect(login.body.code).toBe('USER_DEACTIVATED');

    expect((await t.api('POST', `/users/${id}/reactivate`)).status).toBe(200);
    expect((await t.api('GET', `/users/${id}`)).body.user.is_active).toBe(true);
  });

  it('gives users without an e-mail a placeholder API e-mail', async () => {
    const bot = await t.createUser({ email: null, fullName: 'Imported Person' });
    const got = await t.api('GET', `/users/${bot.id}`);
    expect(got.body.user.delivery_email).toBeNull();
    expect(got.body.user.email).toBe(`user${bot.id}@127.0.0.1`);
    expect((await t.api('GET', '/users/me', { as: bot })).body.user_id).toBe(bot.id);
  });

  it('refuses members who try to administer', async () => {
    const member = await t.createUser({});
    const res = await t.api('PATCH', `/users/${t.owner.id}`, { as: member, form: { role: Role.MEMBER } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ result: 'error', code: 'BAD_REQUEST' });
  });

  it('keeps the last owner an owner', async () => {
    const res = await t.api('PATCH', `/users/${t.owner.id}`, { form: { role: Role.MEMBER } });
    expect(res.body.msg).toMatch(/only organization owner/);
    expect((await t.api('DELETE', `/users/${t.owner.id}`)).body.msg).toMatch(/only organization owner/);
  });
});
