import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends } from '../support/backends.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

/**
 * Zulip keeps a deactivated user's API key: requests with it get 401 USER_DEACTIVATED (not
 * INVALID_API_KEY, which clients treat as "log in again"), and the same key works after
 * reactivation, so a bot configured with a key survives a deactivate/reactivate cycle.
 */
describe.each(backends())('a deactivated user API key on %s', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is answered USER_DEACTIVATED while deactivated and works again after reactivation', async () => {
    const bot = await t.createUser({ fullName: 'Config Bot' });
    expect((await t.api('GET', '/users/me', { as: bot })).body.user_id).toBe(bot.id);

    expect((await t.api('DELETE', `/users/${bot.id}`)).status).toBe(200);
    const refused = await t.api('GET', '/users/me', { as: bot });
    expect(refused).toEqual({
      status: 401,
      body: { result: 'error', msg: 'Account is deactivated', code: 'USER_DEACTIVATED' },
    });
    // Negative control: a wrong key for the same deactivated user is still just a wrong key.
    const wrong = await t.api('GET', '/users/me', { as: { ...bot, apiKey: 'x'.repeat(32) } });
    expect(wrong.body.code).toBe('INVALID_API_KEY');

    expect((await t.api('POST', `/users/${bot.id}/reactivate`)).status).toBe(200);
    expect(await t.api('GET', '/users/me', { as: bot })).toMatchObject({
      status: 200,
      body: { result: 'success', user_id: bot.id },
    });
  });
});
