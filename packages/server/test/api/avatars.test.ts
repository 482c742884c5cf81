import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { avatarColour, initials } from '../../src/images/defaultAvatar.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

/** Default avatars and Concord's versioned avatar URLs (before uploads exist). */
describe('avatars', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite');
  });
  afterAll(async () => {
    await t?.close();
  });
  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${t.url}${path}`, { redirect: 'manual', headers });

  it('serves a generated avatar, immutable, for a user without an e-mail', async () => {
    const ghost = await t.createUser({ email: null, fullName: 'Imported Person' });
    const user = (await t.api('GET', `/users/${ghost.id}`)).body.user;
    expect(user.avatar_url).toBe(`${t.url}/avatar/${ghost.id}/v${user.avatar_version}`);
    const res = await fetch(user.avatar_url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const svg = await res.text();
    expect(svg).toContain('>IP</text>');
    expect(svg).toContain(avatarColour(ghost.id));
    const again = await get(new URL(user.avatar_url).pathname, { 'if-none-match': res.headers.get('etag')! });
    expect(again.status).toBe(304);
  });

  it('never shows another user’s avatar: colours and initials are the user’s own', async () => {
    const a = await t.createUser({ fullName: 'Ada Lovelace' });
    const b = await t.createUser({ fullName: 'Bob' });
    const [sa, sb] = await Promise.all([a, b].map(async (u) => (await get(`/avatar/${u.id}/v1`)).text()));
    expect(sa).toContain('>AL</text>');
    expect(sb).toContain('>B</text>');
    expect(avatarColour(a.id)).not.toBe(avatarColour(b.id));
    expect(initials('  émile   zola ')).toBe('ÉZ');
    expect(initials('')).toBe('?');
  });

  it('redirects Zulip’s /avatar/{id or e-mail} and old versions to the current URL, briefly cached', async () => {
    const u = await t.createUser({ email: 'redirect@example.com', fullName: 'Re Direct' });
    for (const path of [`/avatar/${u.id}`, '/avatar/redirect@example.com', `/avatar/${u.id}/v0`]) {
      const res = await get(path);
      expect(res.status, path).toBe(302);
      expect(res.headers.get('location'), path).toBe(`${t.url}/avatar/${u.id}/v1`);
      expect(res.headers.get('cache-control'), path).toBe('public, max-age=60');
    }
    const sized = await get(`/avatar/${u.id}?s=64`);
    expect(sized.headers.get('location')).toBe(`${t.url}/avatar/${u.id}/v1?s=64`);
    expect(await (await get(`/avatar/${u.id}/v1?s=64`)).text()).toMatch(/^<svg[^>]* width="64" height="64"/);
  });

  it('refuses unknown users and sizes with Zulip errors', async () => {
    const missing = await get('/avatar/999999/v1');
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({
      result: 'error',
      code: 'BAD_REQUEST',
      msg: expect.stringMatching(/No such user/),
    });
    const badSize = await get(`/avatar/${t.owner.id}/v1?s=77`);
    expect(badSize.status).toBe(400);
    expect(((await badSize.json()) as { msg: string }).msg).toMatch(/s.*size must be one of/);
  });
});
