import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { avatarColour } from '../../src/images/defaultAvatar.js';
import { backends } from '../support/backends.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

interface Person {
  user_id: number;
  avatar_url?: string | null;
  avatar_version?: number;
}

/**
 * Incident 1's crash path: an imported user without an e-mail address gets a generated avatar in
 * every API response and event that carries an avatar URL — a versioned URL that serves an image
 * (their initials on their colour), never null, never an error, never another user's avatar.
 */
describe.each(backends())('a user without an e-mail address (%s)', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** The avatar a URL serves: 200, an SVG with these initials on this user's colour. */
  const expectGenerated = async (url: string | null | undefined, id: number, initials: string) => {
    expect(url, `avatar_url of ${id}`).toMatch(new RegExp(`^${t.url}/avatar/${id}/v\\d+$`));
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    const svg = await res.text();
    expect(svg).toContain(`>${initials}</text>`);
    expect(svg).toContain(avatarColour(id));
  };
  type UserEvent = { id: number; type: string; op?: string; person?: Person };
  /** Polls the queue until `enough` holds for the realm_user events received so far (or 10 s). */
  const eventsUntil = async (
    queue: { queue_id: string; last_event_id: number },
    enough: (events: UserEvent[]) => boolean,
  ) => {
    const got: UserEvent[] = [];
    for (let i = 0; i < 200 && !enough(got); i++) {
      const res = await t.api('GET', '/events', {
        query: { queue_id: queue.queue_id, last_event_id: queue.last_event_id, dont_block: true },
      });
      expect(res.status).toBe(200);
      const list = res.body.events as UserEvent[];
      if (list.length > 0) queue.last_event_id = list.at(-1)!.id;
      got.push(...list.filter((e) => e.type === 'realm_user'));
      if (!enough(got)) await new Promise((r) => setTimeout(r, 50));
    }
    return got;
  };

  it('in the register snapshot, every user query, and the events that create and change them', async () => {
    const queue = (
      await t.api('POST', '/register', { form: { event_types: ['realm_user'], client_gravatar: true } })
    ).body as { queue_id: string; last_event_id: number };

    const ghost = await t.createUser({ email: null, fullName: 'Nadia Noemail' });
    const other = await t.createUser({ email: null, fullName: 'Otto Other' });

    // The event that announces the user.
    const isAdd = (id: number) => (e: UserEvent) => e.op === 'add' && e.person?.user_id === id;
    const added = await eventsUntil(queue, (es) => es.some(isAdd(ghost.id)) && es.some(isAdd(other.id)));
    const addedGhost = added.find((e) => e.person?.user_id === ghost.id)?.person;
    expect(addedGhost, JSON.stringify(added)).toBeDefined();
    await expectGenerated(addedGhost!.avatar_url, ghost.id, 'NN');

    // Every read of users: one user, the list, and a fresh snapshot (also with client_gravatar).
    await expectGenerated((await t.api('GET', `/users/${ghost.id}`)).body.user.avatar_url, ghost.id, 'NN');
    const list = (await t.api('GET', '/users')).body.members as Person[];
    await expectGenerated(list.find((u) => u.user_id === ghost.id)?.avatar_url, ghost.id, 'NN');
    await expectGenerated(list.find((u) => u.user_id === other.id)?.avatar_url, other.id, 'OO');
    for (const clientGravatar of [false, true]) {
      const snap = (
        await t.api('POST', '/register', {
          form: { fetch_event_types: ['realm_user'], client_gravatar: clientGravatar },
        })
      ).body.realm_users as Person[];
      await expectGenerated(snap.find((u) => u.user_id === ghost.id)?.avatar_url, ghost.id, 'NN');
    }
    // The user's own view of themselves.
    const me = await t.api('GET', '/users/me', { as: ghost });
    expect(me.status).toBe(200);
    await expectGenerated(me.body.avatar_url, ghost.id, 'NN');

    // An uploaded avatar, then back to the default: each change is an event with a new URL, and
    // the default one is generated again.
    const form = new FormData();
    const png = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#aa3300' } })
      .png()
      .toBuffer();
    form.append('file', new Blob([png]), 'a.png');
    const auth = `Basic ${Buffer.from(`${t.owner.email}:${t.owner.apiKey}`).toString('base64')}`;
    const up = await fetch(`${t.url}/api/v1/users/${ghost.id}/avatar`, {
      method: 'POST',
      headers: { authorization: auth },
      body: form,
    });
    expect(up.status).toBe(200);
    const uploaded = await fetch(((await up.json()) as { avatar_url: string }).avatar_url);
    expect(uploaded.headers.get('content-type')).toBe('image/png');
    const del = await fetch(`${t.url}/api/v1/users/${ghost.id}/avatar`, {
      method: 'DELETE',
      headers: { authorization: auth },
    });
    const cleared = ((await del.json()) as { avatar_url: string }).avatar_url;
    const isUpdate = (e: UserEvent) =>
      e.op === 'update' && e.person?.user_id === ghost.id && Boolean(e.person.avatar_url);
    const updates = (await eventsUntil(queue, (es) => es.filter(isUpdate).length >= 2))
      .filter(isUpdate)
      .map((e) => e.person!);
    expect(updates.map((p) => p.avatar_version)).toEqual([2, 3]);
    expect(updates[1]!.avatar_url).toBe(cleared);
    await expectGenerated(cleared, ghost.id, 'NN');
  });
});
