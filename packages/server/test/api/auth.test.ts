import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../../src/auth/password.js';
import { backends } from '../support/backends.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

describe('password hashing', () => {
  it('verifies the right password only, and keeps its parameters with the hash', async () => {
    const hash = await hashPassword('tr0ub4dor&3', 10);
    expect(hash).toMatch(/^scrypt\$10\$8\$1\$/);
    expect(await verifyPassword('tr0ub4dor&3', hash)).toBe(true);
    expect(await verifyPassword('tr0ub4dor&4', hash)).toBe(false);
    expect(await verifyPassword('anything', 'not-a-hash')).toBe(false);
    expect(await hashPassword('tr0ub4dor&3', 10)).not.toBe(hash);
  });
});

describe.each(backends())('authentication on %s', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { CONCORD_LOGIN_RATE_LIMIT: '3' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('rejects missing, malformed and wrong credentials with 401 and Zulip codes', async () => {
    expect((await t.api('GET', '/users', { as: null })).body.code).toBe('UNAUTHORIZED');
    const wrong = await t.api('GET', '/users', { as: { ...t.owner, apiKey: 'x'.repeat(32) } });
    expect(wrong).toMatchObject({ status: 401, body: { result: 'error', code: 'INVALID_API_KEY' } });
    const res = await fetch(`${t.url}/api/v1/users`, { headers: { authorization: 'Bearer abc' } });
    expect(res.status).toBe(401);
  });

  it('rate-limits failed logins per e-mail, with Retry-After', async () => {
    const user = await t.createUser({ password: 'right-password' });
    for (let i = 0; i < 3; i++) {
      const bad = await t.api('POST', '/fetch_api_key', {
        as: null,
        form: { username: user.email, password: 'wrong' },
      });
      expect(bad.body.code).toBe('AUTHENTICATION_FAILED');
    }
    const blocked = await fetch(`${t.url}/api/v1/fetch_api_key`, {
      method: 'POST',
      body: new URLSearchParams({ username: user.email, password: 'right-password' }),
    });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await blocked.json()) as { code: string }).code).toBe('RATE_LIMIT_HIT');
  });

  it('regenerates an API key and the old one stops working at once', async () => {
    const user = await t.createUser({});
    const res = await t.api('POST', '/users/me/api_key/regenerate', { as: user });
    expect(res.body.api_key).toMatch(/^[A-Za-z0-9]{32}$/);
    expect((await t.api('GET', '/users/me', { as: user })).status).toBe(401);
    expect((await t.api('GET', '/users/me', { as: { ...user, apiKey: res.body.api_key } })).status).toBe(200);
  });
});
