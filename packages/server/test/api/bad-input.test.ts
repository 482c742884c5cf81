import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { limits } from '../../src/domain/validation.js';
import { backends } from '../support/backends.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';
import type { RawRequest } from './raw-request.js';
import { basic, form, rawRequest } from './raw-request.js';

/** Ids and credentials of the world the rows refer to. */
interface World {
  owner: Credentials;
  member: Credentials;
  deactivated: Credentials;
  general: number;
  secret: number;
  queueId: string;
}

/**
 * One row: a bad request, and the exact answer it must get. `names` is what the message must
 * contain to tell the client which field is wrong (the parameter, or for Zulip's own messages
 * about unknown objects, the id or name it gave).
 */
type Row = [
  name: string,
  request: (w: World) => RawRequest,
  status: number,
  code: string,
  names: string | RegExp,
  extra?: Record<string, unknown>,
];

const FORM = 'application/x-www-form-urlencoded';
const UNKNOWN = 999_999;
const auth = (who: Credentials) => ({ authorization: basic(who.email, who.apiKey) });

/** A request with form parameters in the body (or the query string for GET), as the owner. */
const req =
  (method: string, path: string, pairs: [string, string][] = [], as?: (w: World) => Credentials) =>
  (w: World): RawRequest => {
    const headers = auth(as ? as(w) : w.owner);
    if (method === 'GET' || pairs.length === 0)
      return { method, path: `/api/v1${path}${pairs.length ? `?${form(pairs)}` : ''}`, headers };
    return {
      method,
      path: `/api/v1${path}`,
      headers: { ...headers, 'content-type': FORM },
      body: form(pairs),
    };
  };

/** A request with an arbitrary body and content type, as the owner. */
const body =
  (method: string, path: string, contentType: string, text: string) =>
  (w: World): RawRequest => ({
    method,
    path: `/api/v1${path}`,
    headers: { ...auth(w.owner), 'content-type': contentType },
    body: text,
  });

const long = (n: number) => 'x'.repeat(n);
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const newUser = (over: Record<string, string>): [string, string][] =>
  Object.entries({ email: 'new@example.com', password: 'pw-123456', full_name: 'New Person', ...over });
const sub = (subs: unknown, more: [string, string][] = []): [string, string][] => [
  ['subscriptions', typeof subs === 'string' ? subs : JSON.stringify(subs)],
  ...more,
];

// One row per line reads as a table; prettier would spread each over eight lines.
// prettier-ignore
const rows: Row[] = [
  // fetch_api_key
  ['fetch_api_key without username', req('POST', '/fetch_api_key', [['password', 'x']]), 400, 'REQUEST_VARIABLE_MISSING', 'username'],
  ['fetch_api_key without password', req('POST', '/fetch_api_key', [['username', 'a@b.c']]), 400, 'REQUEST_VARIABLE_MISSING', 'password'],
  ['fetch_api_key over-long username', req('POST', '/fetch_api_key', [['username', long(255)], ['password', 'x']]), 400, 'BAD_REQUEST', 'username'],
  ['fetch_api_key NUL in username', req('POST', '/fetch_api_key', [['username', 'a\u0000@b.c'], ['password', 'x']]), 400, 'BAD_REQUEST', 'username'],
  ['fetch_api_key malformed JSON body', body('POST', '/fetch_api_key', 'application/json', '{"username":'), 400, 'INVALID_JSON', 'JSON'],
  // server_settings
  ['server_settings with a wrong method', req('DELETE', '/server_settings'), 404, 'NOT_FOUND', '/api/v1/server_settings'],
  // users list
  ['users list: user_ids not integers', req('GET', '/users', [['user_ids', 'abc']]), 400, 'BAD_REQUEST', 'user_ids'],
  ['users list: user_ids an object', req('GET', '/users', [['user_ids', '{"a":1}']]), 400, 'BAD_REQUEST', 'user_ids'],
  ['users list: user_ids malformed JSON', req('GET', '/users', [['user_ids', '[1,']]), 400, 'BAD_REQUEST', 'user_ids'],
  ['users list: user_ids a float', req('GET', '/users', [['user_ids', '[1.5]']]), 400, 'BAD_REQUEST', 'user_ids[0]'],
  ['users list: client_gravatar not a boolean', req('GET', '/users', [['client_gravatar', 'maybe']]), 400, 'BAD_REQUEST', 'client_gravatar'],
  // user by id / e-mail
  ['user by unknown id', req('GET', `/users/${UNKNOWN}`), 400, 'BAD_REQUEST', `user_id '${UNKNOWN}'`],
  ['user by id out of range', req('GET', '/users/99999999999'), 400, 'BAD_REQUEST', 'user_id'],
  ['user by unknown e-mail', req('GET', '/users/nobody@example.com'), 400, 'BAD_REQUEST', "email 'nobody@example.com'"],
  ['user by e-mail with NUL', req('GET', '/users/a%00b@example.com'), 400, 'BAD_REQUEST', 'email'],
  ['user path not percent-encoded UTF-8', req('GET', '/users/%E0%A4%A'), 400, 'BAD_REQUEST', '/api/v1/users/%E0%A4%A'],
  ['stream path parameter over 300 characters', req('PATCH', `/streams/${long(301)}`, [['description', 'd']]), 400, 'BAD_REQUEST', 'path parameter'],
  // users/me and authentication
  ['me without credentials', (w) => ({ ...req('GET', '/users/me')(w), headers: {} }), 401, 'UNAUTHORIZED', 'authentication'],
  ['me with a malformed Basic header', (w) => ({ ...req('GET', '/users/me')(w), headers: { authorization: 'Basic !!!' } }), 401, 'UNAUTHORIZED', 'authorization header'],
  ['me with a wrong API key', (w) => ({ ...req('GET', '/users/me')(w), headers: { authorization: basic(w.owner.email, 'x'.repeat(32)) } }), 401, 'INVALID_API_KEY', 'API key'],
  ['me with NUL in the e-mail', (w) => ({ ...req('GET', '/users/me')(w), headers: { authorization: basic('a\u0000@b.c', 'k') } }), 401, 'INVALID_API_KEY', 'API key'],
  ['me as a deactivated user', req('GET', '/users/me', [], (w) => w.deactivated), 401, 'USER_DEACTIVATED', 'deactivated'],
  // create user
  ['create user without email', req('POST', '/users', newUser({}).filter(([k]) => k !== 'email')), 400, 'REQUEST_VARIABLE_MISSING', 'email'],
  ['create user without full_name', req('POST', '/users', newUser({}).filter(([k]) => k !== 'full_name')), 400, 'REQUEST_VARIABLE_MISSING', 'full_name'],
  ['create user with an invalid e-mail', req('POST', '/users', newUser({ email: 'not-an-email' })), 400, 'BAD_REQUEST', 'email'],
  ['create user with an e-mail over 254', req('POST', '/users', newUser({ email: `${long(250)}@example.com` })), 400, 'BAD_REQUEST', 'email'],
  ['create user with a taken e-mail', req('POST', '/users', newUser({ email: 'member@example.com' })), 400, 'BAD_REQUEST', /email/i],
  ['create user with NUL in the e-mail', req('POST', '/users', newUser({ email: 'a\u0000b@example.com' })), 400, 'BAD_REQUEST', 'email'],
  [`create user with full_name over ${limits.fullName}`, req('POST', '/users', newUser({ full_name: long(limits.fullName + 1) })), 400, 'BAD_REQUEST', 'full_name'],
  ['create user with a blank full_name', req('POST', '/users', newUser({ full_name: '   ' })), 400, 'BAD_REQUEST', 'full_name'],
  ['create user with a control character in full_name', req('POST', '/users', newUser({ full_name: 'a\u0007b' })), 400, 'BAD_REQUEST', 'full_name'],
  ['create user with a password over 1024', req('POST', '/users', newUser({ password: long(1025) })), 400, 'BAD_REQUEST', 'password'],
  ['create user with email an object (JSON body)', body('POST', '/users', 'application/json', JSON.stringify({ email: { a: 1 }, password: 'p', full_name: 'N' })), 400, 'BAD_REQUEST', 'email'],
  ['create user with full_name nested too deeply', body('POST', '/users', 'application/json', `{"email":"n@example.com","password":"p","full_name":${deep(20_000)}}`), 400, 'BAD_REQUEST', 'full_name'],
  ['create user with a malformed JSON body', body('POST', '/users', 'application/json', '{"email":"n@example.com",'), 400, 'INVALID_JSON', 'JSON'],
  ['create user with an unsupported content type', body('POST', '/users', 'application/xml', '<user/>'), 415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type'],
  ['create user with multipart but no boundary', body('POST', '/users', 'multipart/form-data', 'email=x'), 400, 'BAD_REQUEST', 'boundary'],
  ['create user with a 300-character boundary', body('POST', '/users', `multipart/form-data; boundary=${long(300)}`, 'x'), 400, 'BAD_REQUEST', 'boundary'],
  ['create user with a truncated multipart body', body('POST', '/users', 'multipart/form-data; boundary=zz', '--zz\r\nContent-Disposition: form-data; name="email"; filename="a"\r\n\r\nxx'), 400, 'BAD_REQUEST', 'multipart'],
  ['create user with a truncated multipart field', body('POST', '/users', 'multipart/form-data; boundary=zz', '--zz\r\nContent-Disposition: form-data; name="email"\r\n\r\nn@example.com'), 400, 'REQUEST_VARIABLE_MISSING', 'email'],
  ['create user with a __proto__ multipart field', body('POST', '/users', 'multipart/form-data; boundary=zz', '--zz\r\nContent-Disposition: form-data; name="__proto__"\r\n\r\nx\r\n--zz--'), 400, 'BAD_REQUEST', 'field name: __proto__'],
  ['create user with a body over 1 MiB', body('POST', '/users', FORM, `full_name=${long(1024 * 1024 + 10)}`), 413, 'PAYLOAD_TOO_LARGE', 'body'],
  // update user
  ['update unknown user', req('PATCH', `/users/${UNKNOWN}`, [['full_name', 'X']]), 400, 'BAD_REQUEST', `user_id ${UNKNOWN}`],
  ['update user with a non-id', req('PATCH', '/users/abc', [['full_name', 'X']]), 400, 'BAD_REQUEST', 'user_id'],
  ['update user with role a string', req('PATCH', '/users/2', [['role', 'admin']]), 400, 'BAD_REQUEST', 'role'],
  ['update user with role an array', req('PATCH', '/users/2', [['role', '[200]']]), 400, 'BAD_REQUEST', 'role'],
  ['update user with an unknown role', req('PATCH', '/users/2', [['role', '300']]), 400, 'BAD_REQUEST', 'role'],
  ['update user with a huge role', req('PATCH', '/users/2', [['role', '99999999999']]), 400, 'BAD_REQUEST', 'role'],
  [`update user with full_name over ${limits.fullName}`, req('PATCH', '/users/2', [['full_name', long(limits.fullName + 1)]]), 400, 'BAD_REQUEST', 'full_name'],
  ['update own settings with a blank full_name', req('PATCH', '/settings', [['full_name', ' ']]), 400, 'BAD_REQUEST', 'full_name'],
  // deactivate / reactivate
  ['deactivate unknown user', req('DELETE', `/users/${UNKNOWN}`), 400, 'BAD_REQUEST', `user_id ${UNKNOWN}`],
  ['deactivate user -1', req('DELETE', '/users/-1'), 400, 'BAD_REQUEST', 'user_id'],
  ['deactivate with an over-long comment', req('DELETE', '/users/2', [['deactivation_notification_comment', long(2001)]]), 400, 'BAD_REQUEST', 'deactivation_notification_comment'],
  ['reactivate unknown user', req('POST', `/users/${UNKNOWN}/reactivate`), 400, 'BAD_REQUEST', `user_id ${UNKNOWN}`],
  ['reactivate user 1.5', req('POST', '/users/1.5/reactivate'), 400, 'BAD_REQUEST', 'user_id'],
  // regenerate key
  ['regenerate key with a wrong key', (w) => ({ ...req('POST', '/users/me/api_key/regenerate')(w), headers: { authorization: basic(w.owner.email, 'nope') } }), 401, 'INVALID_API_KEY', 'API key'],
  // streams list / by id
  ['streams list with include_public not a boolean', req('GET', '/streams', [['include_public', 'yes']]), 400, 'BAD_REQUEST', 'include_public'],
  ['streams list with exclude_archived an object', req('GET', '/streams', [['exclude_archived', '{}']]), 400, 'BAD_REQUEST', 'exclude_archived'],
  ['stream by unknown id', req('GET', `/streams/${UNKNOWN}`), 400, 'STREAM_DOES_NOT_EXIST', `ID '${UNKNOWN}'`, { stream_id: UNKNOWN }],
  ['stream by a non-id', req('GET', '/streams/abc'), 400, 'BAD_REQUEST', 'stream_id'],
  ['private stream by id as a non-subscriber', (w) => req('GET', `/streams/${w.secret}`, [], (x) => x.member)(w), 400, 'STREAM_DOES_NOT_EXIST', 'ID'],
  ['get_stream_id without stream', req('GET', '/get_stream_id'), 400, 'REQUEST_VARIABLE_MISSING', 'stream'],
  ['get_stream_id of an unknown name', req('GET', '/get_stream_id', [['stream', 'nowhere']]), 400, 'BAD_REQUEST', "channel name 'nowhere'"],
  ['get_stream_id with NUL', req('GET', '/get_stream_id', [['stream', 'a\u0000b']]), 400, 'BAD_REQUEST', 'stream'],
  // create by subscribe
  ['subscribe without subscriptions', req('POST', '/users/me/subscriptions', [['invite_only', 'false']]), 400, 'REQUEST_VARIABLE_MISSING', 'subscriptions'],
  ['subscribe with malformed JSON', req('POST', '/users/me/subscriptions', sub('[{"name":')), 400, 'BAD_REQUEST', 'subscriptions'],
  ['subscribe with an object for the array', req('POST', '/users/me/subscriptions', sub({ name: 'x' })), 400, 'BAD_REQUEST', 'subscriptions'],
  ['subscribe with an empty list', req('POST', '/users/me/subscriptions', sub([])), 400, 'BAD_REQUEST', 'subscriptions'],
  ['subscribe with a numeric name', req('POST', '/users/me/subscriptions', sub([{ name: 5 }])), 400, 'BAD_REQUEST', 'subscriptions[0][name]'],
  [`subscribe with a name over ${limits.streamName}`, req('POST', '/users/me/subscriptions', sub([{ name: 'ok' }, { name: long(limits.streamName + 1) }])), 400, 'BAD_REQUEST', 'subscriptions[1][name]'],
  ['subscribe with a blank name', req('POST', '/users/me/subscriptions', sub([{ name: '  ' }])), 400, 'BAD_REQUEST', 'subscriptions[0][name]'],
  ['subscribe with NUL in a name', req('POST', '/users/me/subscriptions', sub([{ name: 'a\u0000b' }])), 400, 'BAD_REQUEST', 'subscriptions[0][name]'],
  ['subscribe with a lone surrogate in a name', req('POST', '/users/me/subscriptions', sub('[{"name":"\\ud800x"}]')), 400, 'BAD_REQUEST', 'subscriptions[0][name]'],
  [`subscribe with a description over ${limits.streamDescription}`, req('POST', '/users/me/subscriptions', sub([{ name: 'new one', description: long(limits.streamDescription + 1) }])), 400, 'BAD_REQUEST', 'subscriptions[0][description]'],
  ['subscribe an unknown user id', req('POST', '/users/me/subscriptions', sub([{ name: 'general' }], [['principals', `[${UNKNOWN}]`]])), 400, 'BAD_REQUEST', `principals[0] is ${UNKNOWN}`],
  ['subscribe a user id over 32 bits', req('POST', '/users/me/subscriptions', sub([{ name: 'general' }], [['principals', '[2147483648]']])), 400, 'BAD_REQUEST', 'principals[0]'],
  ['unsubscribe a user id over 32 bits', req('DELETE', '/users/me/subscriptions', sub(['general'], [['principals', '[99999999999]']])), 400, 'BAD_REQUEST', 'principals[0]'],
  ['subscribe an unknown e-mail', req('POST', '/users/me/subscriptions', sub([{ name: 'general' }], [['principals', '["nobody@example.com"]']])), 400, 'BAD_REQUEST', 'principals[0]'],
  ['subscribe an e-mail with NUL', req('POST', '/users/me/subscriptions', sub([{ name: 'general' }], [['principals', '["a\\u0000b@example.com"]']])), 400, 'BAD_REQUEST', 'principals[0]'],
  ['subscribe with principals a string', req('POST', '/users/me/subscriptions', sub([{ name: 'general' }], [['principals', '"x"']])), 400, 'BAD_REQUEST', 'principals'],
  ['subscribe with invite_only not a boolean', req('POST', '/users/me/subscriptions', sub([{ name: 'general' }], [['invite_only', 'maybe']])), 400, 'BAD_REQUEST', 'invite_only'],
  // update / archive stream
  ['update unknown stream', req('PATCH', `/streams/${UNKNOWN}`, [['description', 'd']]), 400, 'STREAM_DOES_NOT_EXIST', `ID '${UNKNOWN}'`],
  [`rename stream to over ${limits.streamName}`, (w) => req('PATCH', `/streams/${w.general}`, [['new_name', long(limits.streamName + 1)]])(w), 400, 'BAD_REQUEST', 'new_name'],
  ['rename stream to a taken name', (w) => req('PATCH', `/streams/${w.general}`, [['new_name', 'Secret']])(w), 400, 'BAD_REQUEST', "Channel name 'Secret'"],
  [`stream description over ${limits.streamDescription}`, (w) => req('PATCH', `/streams/${w.general}`, [['description', long(limits.streamDescription + 1)]])(w), 400, 'BAD_REQUEST', 'description'],
  ['stream is_private not a boolean', (w) => req('PATCH', `/streams/${w.general}`, [['is_private', '2']])(w), 400, 'BAD_REQUEST', 'is_private'],
  ['archive unknown stream', req('DELETE', `/streams/${UNKNOWN}`), 400, 'STREAM_DOES_NOT_EXIST', `ID '${UNKNOWN}'`],
  ['archive a non-id', req('DELETE', '/streams/x'), 400, 'BAD_REQUEST', 'stream_id'],
  // subscriptions get / remove, members, is_subscribed
  ['subscriptions with include_subscribers not an option', req('GET', '/users/me/subscriptions', [['include_subscribers', 'maybe']]), 400, 'BAD_REQUEST', 'include_subscribers'],
  ['unsubscribe from an unknown stream', req('DELETE', '/users/me/subscriptions', sub(['nowhere'])), 400, 'STREAM_DOES_NOT_EXIST', "'nowhere'", { stream: 'nowhere' }],
  ['unsubscribe with NUL in a name', req('DELETE', '/users/me/subscriptions', sub(['a\u0000b'])), 400, 'STREAM_DOES_NOT_EXIST', 'a\u0000b'],
  ['unsubscribe with a number for a name', req('DELETE', '/users/me/subscriptions', sub([1])), 400, 'BAD_REQUEST', 'subscriptions[0]'],
  ['unsubscribe an unknown user', req('DELETE', '/users/me/subscriptions', sub(['general'], [['principals', `[${UNKNOWN}]`]])), 400, 'BAD_REQUEST', 'principals[0]'],
  ['unsubscribe without subscriptions', req('DELETE', '/users/me/subscriptions'), 400, 'REQUEST_VARIABLE_MISSING', 'subscriptions'],
  ['members of an unknown stream', req('GET', `/streams/${UNKNOWN}/members`), 400, 'STREAM_DOES_NOT_EXIST', `ID '${UNKNOWN}'`],
  ['is_subscribed of an unknown user', (w) => req('GET', `/users/${UNKNOWN}/subscriptions/${w.general}`)(w), 400, 'BAD_REQUEST', `user_id ${UNKNOWN}`],
  ['is_subscribed to an unknown stream', req('GET', `/users/1/subscriptions/${UNKNOWN}`), 400, 'STREAM_DOES_NOT_EXIST', `ID '${UNKNOWN}'`],
  // register
  ['register with event_types not JSON', req('POST', '/register', [['event_types', 'message']]), 400, 'BAD_REQUEST', 'event_types'],
  ['register with event_types an object', req('POST', '/register', [['event_types', '{"a":1}']]), 400, 'BAD_REQUEST', 'event_types'],
  ['register with a number in event_types', req('POST', '/register', [['event_types', '[1]']]), 400, 'BAD_REQUEST', 'event_types[0]'],
  ['register with include_subscribers not an option', req('POST', '/register', [['include_subscribers', 'yes']]), 400, 'BAD_REQUEST', 'include_subscribers'],
  ['register with client_capabilities an array', req('POST', '/register', [['client_capabilities', '[]']]), 400, 'BAD_REQUEST', 'client_capabilities'],
  ['register with narrow an object', req('POST', '/register', [['narrow', '{}']]), 400, 'BAD_REQUEST', 'narrow'],
  ['register with narrow nested too deeply (JSON body)', body('POST', '/register', 'application/json', `{"narrow":${deep(50_000)}}`), 400, 'BAD_REQUEST', 'narrow'],
  ['register with presence_history_limit_days not an integer', req('POST', '/register', [['presence_history_limit_days', 'x']]), 400, 'BAD_REQUEST', 'presence_history_limit_days'],
  // events
  ['events without queue_id', req('GET', '/events'), 400, 'REQUEST_VARIABLE_MISSING', 'queue_id'],
  ['events of an unknown queue', req('GET', '/events', [['queue_id', 'nope'], ['dont_block', 'true']]), 400, 'BAD_EVENT_QUEUE_ID', 'nope', { queue_id: 'nope' }],
  ['events with NUL in queue_id', req('GET', '/events', [['queue_id', 'a\u0000b']]), 400, 'BAD_REQUEST', 'queue_id'],
  ['events with last_event_id not an integer', (w) => req('GET', '/events', [['queue_id', w.queueId], ['last_event_id', 'abc']])(w), 400, 'BAD_REQUEST', 'last_event_id'],
  ['events with dont_block not a boolean', (w) => req('GET', '/events', [['queue_id', w.queueId], ['dont_block', 'maybe']])(w), 400, 'BAD_REQUEST', 'dont_block'],
  ['delete an unknown queue', req('DELETE', '/events', [['queue_id', 'nope']]), 400, 'BAD_EVENT_QUEUE_ID', 'nope'],
  ['delete a queue without queue_id', req('DELETE', '/events'), 400, 'REQUEST_VARIABLE_MISSING', 'queue_id'],
  // avatars
  ['avatar upload without a file (Zulip\'s message)', req('POST', '/users/me/avatar', [['x', '1']]), 400, 'BAD_REQUEST', 'exactly one avatar'],
  ['avatar upload for an unknown user without a file', req('POST', `/users/${UNKNOWN}/avatar`, [['x', '1']]), 400, 'BAD_REQUEST', 'exactly one avatar'],
  ['avatar removal for an unknown user', req('DELETE', `/users/${UNKNOWN}/avatar`), 400, 'BAD_REQUEST', `${UNKNOWN}`],
  ['avatar removal for a non-id', req('DELETE', '/users/x1/avatar'), 400, 'BAD_REQUEST', 'user_id'],
  ['event stream without queue_id', req('GET', '/events/stream'), 400, 'REQUEST_VARIABLE_MISSING', 'queue_id'],
  ['event stream of an unknown queue', req('GET', '/events/stream', [['queue_id', 'nope']]), 400, 'BAD_EVENT_QUEUE_ID', 'nope', { queue_id: 'nope' }],
  ['event stream with last_event_id not an integer', (w) => req('GET', '/events/stream', [['queue_id', w.queueId], ['last_event_id', 'x']])(w), 400, 'BAD_REQUEST', 'last_event_id'],
  ['event socket without an upgrade', req('GET', '/events/socket', [['queue_id', 'nope']]), 400, 'BAD_REQUEST', 'WebSocket'],
  // the HTTP edge
  ['an unknown endpoint', req('GET', '/no/such/thing'), 404, 'NOT_FOUND', '/api/v1/no/such/thing'],
  // The body parsers live in the API routes' context (http/app.ts): a body to no route is still 404.
  ['a multipart body to an unknown endpoint', body('POST', '/no/such/thing', 'multipart/form-data; boundary=zz', '--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--zz--'), 404, 'NOT_FOUND', '/api/v1/no/such/thing'],
  ['a form body to an unknown endpoint', body('POST', '/no/such/thing', FORM, 'a=b'), 404, 'NOT_FOUND', '/api/v1/no/such/thing'],
  ['an unknown HTTP method', (w) => ({ ...req('GET', '/users/me')(w), method: 'BREW' }), 400, 'BAD_REQUEST', 'HTTP request'],
  ['a query string over the header limit', req('GET', '/users', [['user_ids', long(20_000)]]), 431, 'HEADERS_TOO_LARGE', 'headers'],
];

describe.each(backends())('bad input on %s', (backend) => {
  let t: TestServer;
  let w: World;

  /** Everything a mutation could change, and the change log head that every change moves. */
  async function state(): Promise<unknown> {
    const get = (path: string) => rawRequest(t.url, { method: 'GET', path, headers: auth(t.owner) });
    const users = await get('/api/v1/users');
    const streams = await get('/api/v1/streams?include_all_active=true&exclude_archived=false');
    expect([users.status, streams.status]).toEqual([200, 200]);
    const subs = await t.server.store.db
      .selectFrom('subscriptions')
      .select(['user_id', 'stream_id'])
      .orderBy('id')
      .execute();
    const keys = await t.server.store.db
      .selectFrom('users')
      .select(['id', 'api_key'])
      .orderBy('id')
      .execute();
    return { head: await t.server.log.head(), users: users.json, streams: streams.json, subs, keys };
  }

  beforeAll(async () => {
    t = await startTestServer(backend);
    const member = await t.createUser({
      email: 'member@example.com',
      fullName: 'Mia Member',
      role: Role.MEMBER,
    });
    const deactivated = await t.createUser({ email: 'gone@example.com', fullName: 'Gone' });
    expect((await t.api('DELETE', `/users/${deactivated.id}`)).status).toBe(200);
    // The key as stored now (deactivation keeps it, as Zulip does), so requests get USER_DEACTIVATED.
    deactivated.apiKey = (
      await t.server.store.db
        .selectFrom('users')
        .select('api_key')
        .where('id', '=', deactivated.id)
        .executeTakeFirstOrThrow()
    ).api_key;
    const made = await t.api('POST', '/users/me/subscriptions', {
      form: { subscriptions: [{ name: 'general' }], principals: [t.owner.id, member.id] },
    });
    expect(made.status).toBe(200);
    expect(
      (
        await t.api('POST', '/users/me/subscriptions', {
          form: { subscriptions: [{ name: 'Secret' }], invite_only: true },
        })
      ).status,
    ).toBe(200);
    const ids = async (name: string) =>
      (await t.api('GET', '/get_stream_id', { query: { stream: name } })).body.stream_id as number;
    const queue = await t.api('POST', '/register', {});
    w = {
      owner: t.owner,
      member,
      deactivated,
      general: await ids('general'),
      secret: await ids('Secret'),
      queueId: queue.body.queue_id as string,
    };
  });
  afterAll(async () => {
    await t?.close();
  });

  it.each(rows)('%s', async (_name, build, status, code, names, extra) => {
    const before = await state();
    const res = await rawRequest(t.url, build(w));
    expect({ status: res.status, body: res.json }).toMatchObject({
      status,
      body: { result: 'error', code, msg: expect.any(String), ...extra },
    });
    if (typeof names === 'string') expect(res.json.msg).toContain(names);
    else expect(res.json.msg).toMatch(names);
    expect(await state()).toEqual(before);
  });

  it('has a row for every Zulip route the server registers', () => {
    // Coverage of the table itself: a new endpoint without a bad-input row fails here.
    const dir = fileURLToPath(new URL('../../src/http/routes/', import.meta.url));
    const routes = readdirSync(dir).flatMap((f) =>
      [
        ...readFileSync(join(dir, f), 'utf8').matchAll(
          /http\.(get|post|patch|delete|put)(?:<[^(]*>)?\(\s*'(\/api\/v1[^']*)'/g,
        ),
      ].map((m) => ({ method: m[1]!.toUpperCase(), path: m[2]! })),
    );
    expect(routes.length).toBeGreaterThan(20);
    // Static paths win over parametric ones, as in Fastify's router.
    routes.sort((a, b) => a.path.split(':').length - b.path.split(':').length);
    const covered = new Set<string>();
    for (const [, build] of rows) {
      const r = build(w);
      const path = r.path.split('?')[0]!;
      const hit = routes.find(
        (x) => x.method === r.method && new RegExp(`^${x.path.replace(/:[a-z_]+/g, '[^/]+')}$`).test(path),
      );
      if (hit) covered.add(`${hit.method} ${hit.path}`);
    }
    // Takes no parameters at all (unknown ones are returned as ignored), so nothing in it can be bad.
    const exempt = [
      'GET /api/v1/server_settings',
      'DELETE /api/v1/users/me/avatar',
      'GET /api/v1/concord/cluster',
      'GET /api/v1/concord/status/stream',
    ];
    const missing = routes
      .map((x) => `${x.method} ${x.path}`)
      .filter((k) => !covered.has(k) && !exempt.includes(k));
    expect(missing).toEqual([]);
  });

  it('detects a change (negative control for the before/after comparison)', async () => {
    const before = await state();
    expect((await t.api('PATCH', '/settings', { form: { full_name: 'Olga Renamed' } })).status).toBe(200);
    expect(await state()).not.toEqual(before);
  });
});
