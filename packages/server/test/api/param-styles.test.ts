import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { backends } from '../support/backends.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

/**
 * The request encodings of zulip-js, byte for byte as it puts them on the wire (captured from
 * zulip-js 2.1.0 over node-fetch + form-data): multipart POST bodies with form-data's boundary,
 * an empty multipart body for a POST without parameters, PATCH and DELETE parameters in the query
 * string, and arrays in GET queries comma-joined by URLSearchParams (`user_ids=1%2C2`).
 */

const BOUNDARY = '--------------------------89f78347c2db2c75114a7952';

/** A multipart/form-data body as the `form-data` package writes it. */
function formData(fields: Record<string, string>): { type: string; body: Buffer } {
  const parts = Object.entries(fields).map(
    ([name, value]) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
  );
  return {
    type: `multipart/form-data;boundary=${BOUNDARY}`,
    body: Buffer.from(`${parts.join('')}--${BOUNDARY}--\r\n`, 'utf8'),
  };
}

describe.each(backends())('zulip-js parameter styles on %s', (backend) => {
  let t: TestServer;
  let alice: Credentials;
  let bob: Credentials;

  beforeAll(async () => {
    t = await startTestServer(backend);
    alice = await t.createUser({ fullName: 'Alice', password: 'alice-pw' });
    bob = await t.createUser({ fullName: 'Bob' });
  });
  afterAll(async () => {
    await t?.close();
  });

  /** A request with exactly this path (query included), content type and body, as `who`. */
  async function send(
    method: string,
    path: string,
    opts: { as?: Credentials | null; type?: string; body?: Buffer } = {},
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are checked by the assertions
  ): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = {};
    const who = opts.as === undefined ? t.owner : opts.as;
    if (who) headers.authorization = `Basic ${Buffer.from(`${who.email}:${who.apiKey}`).toString('base64')}`;
    if (opts.type) headers['content-type'] = opts.type;
    const res = await fetch(`${t.url}/api/v1${path}`, { method, headers, body: opts.body });
    return { status: res.status, body: await res.json() };
  }

  it('reads multipart/form-data POST bodies, JSON inside fields and UTF-8 values', async () => {
    const login = formData({ username: alice.email, password: 'alice-pw' });
    expect(await send('POST', '/fetch_api_key', { as: null, ...login })).toEqual({
      status: 200,
      body: { result: 'success', msg: '', api_key: alice.apiKey, email: alice.email, user_id: alice.id },
    });

    const sub = formData({
      subscriptions: JSON.stringify([{ name: 'multi ☕', description: 'naïve «quoted»' }]),
      principals: JSON.stringify([alice.id, bob.email]),
    });
    const res = await send('POST', '/users/me/subscriptions', sub);
    expect(res.body).toEqual({
      result: 'success',
      msg: '',
      subscribed: { [alice.id]: ['multi ☕'], [bob.id]: ['multi ☕'] },
      already_subscribed: {},
    });
    const id = (await t.api('GET', '/get_stream_id', { query: { stream: 'multi ☕' } })).body.stream_id;
    expect((await t.api('GET', `/streams/${id}`)).body.stream.description).toBe('naïve «quoted»');

    // Negative control: a field that is not JSON is refused, naming it, so the fields were read.
    const bad = await send('POST', '/users/me/subscriptions', formData({ subscriptions: 'multi' }));
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({
      result: 'error',
      code: 'BAD_REQUEST',
      msg: expect.stringMatching(/subscriptions/),
    });
  });

  it('accepts a parameterless POST whose multipart body is empty', async () => {
    const user = await t.createUser({});
    expect((await t.api('DELETE', `/users/${user.id}`)).status).toBe(200);
    // zulip-js declares multipart with a boundary and sends Content-Length: 0.
    const res = await send('POST', `/users/${user.id}/reactivate`, {
      type: `multipart/form-data;boundary=${BOUNDARY}`,
      body: Buffer.alloc(0),
    });
    expect(res).toEqual({ status: 200, body: { result: 'success', msg: '' } });
    expect((await t.api('GET', `/users/${user.id}`)).body.user.is_active).toBe(true);
  });

  it('reads PATCH parameters from the query string', async () => {
    const user = await t.createUser({ fullName: 'Before' });
    const res = await send(
      'PATCH',
      `/users/${user.id}?full_name=After+%C3%A9&role=${Role.GUEST}&shoe_size=9`,
    );
    expect(res).toEqual({
      status: 200,
      body: { result: 'success', msg: '', ignored_parameters_unsupported: ['shoe_size'] },
    });
    expect((await t.api('GET', `/users/${user.id}`)).body.user).toMatchObject({
      full_name: 'After é',
      role: Role.GUEST,
    });
    // Negative control: an invalid query value is refused and nothing changes.
    const bad = await send('PATCH', `/users/${user.id}?role=boss`);
    expect(bad.status).toBe(400);
    expect(bad.body.msg).toMatch(/role/);
    expect((await t.api('GET', `/users/${user.id}`)).body.user.role).toBe(Role.GUEST);
  });

  it('reads DELETE parameters from the query string', async () => {
    await t.api('POST', '/users/me/subscriptions', { form: { subscriptions: [{ name: 'leave-me' }] } });
    const q = new URLSearchParams({ subscriptions: JSON.stringify(['leave-me']) });
    expect(await send('DELETE', `/users/me/subscriptions?${q}`)).toEqual({
      status: 200,
      body: { result: 'success', msg: '', removed: ['leave-me'], not_removed: [] },
    });

    const reg = await t.api('POST', '/register', { form: { event_types: ['realm_user'] } });
    const queueId = reg.body.queue_id as string;
    expect(await send('DELETE', `/events?queue_id=${encodeURIComponent(queueId)}`)).toEqual({
      status: 200,
      body: { result: 'success', msg: '' },
    });
    const gone = await t.api('GET', '/events', { query: { queue_id: queueId, dont_block: true } });
    expect(gone.body.code).toBe('BAD_EVENT_QUEUE_ID');
    // Negative control: without the parameter the request is refused as missing it.
    expect((await send('DELETE', '/events')).body.code).toBe('REQUEST_VARIABLE_MISSING');
  });

  it('reads comma-joined arrays in GET queries as well as JSON arrays', async () => {
    const ids = (res: { body: { members: { user_id: number }[] } }) =>
      res.body.members.map((m) => m.user_id).sort((a, b) => a - b);
    const want = [alice.id, bob.id].sort((a, b) => a - b);
    expect(ids(await send('GET', `/users?user_ids=${alice.id}%2C${bob.id}`))).toEqual(want);
    expect(ids(await send('GET', `/users?user_ids=${alice.id},${bob.id}`))).toEqual(want);
    expect(ids(await send('GET', `/users?user_ids=${alice.id}`))).toEqual([alice.id]);
    expect(ids(await send('GET', `/users?user_ids=${encodeURIComponent(JSON.stringify(want))}`))).toEqual(
      want,
    );
    // Negative control: a non-integer element is refused, naming its position.
    const bad = await send('GET', `/users?user_ids=${alice.id},bob`);
    expect(bad.status).toBe(400);
    expect(bad.body.msg).toMatch(/user_ids\[1\]/);
  });
});
