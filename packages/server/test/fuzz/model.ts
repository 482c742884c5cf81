import fc from 'fast-check';

/**
 * A model of Concord's Zulip endpoints for the fuzzer: each endpoint's method, path template and
 * parameter kinds. Generated requests mix valid values (real ids, e-mails, channel names, queue
 * ids of the world the test set up) with garbage, so that requests reach deep into the commands
 * instead of all failing at the first parameter.
 */
export type ParamKind =
  | 'bool'
  | 'int'
  | 'role'
  | 'intList'
  | 'string'
  | 'email'
  | 'password'
  | 'fullName'
  | 'streamName'
  | 'description'
  | 'subscriptionsAdd'
  | 'subscriptionsRemove'
  | 'principals'
  | 'typeList'
  | 'jsonObject'
  | 'jsonArray'
  | 'queueId'
  | 'dontBlock'
  | 'includeSubscribers';

export interface Endpoint {
  method: string;
  /** Template with `:user_id`, `:stream_id` or `:who` (a user id or e-mail). */
  path: string;
  params: Record<string, ParamKind>;
}

const listFlags: Record<string, ParamKind> = {
  include_public: 'bool',
  include_subscribed: 'bool',
  exclude_archived: 'bool',
  include_all_active: 'bool',
  include_default: 'bool',
};

export const endpoints: Endpoint[] = [
  { method: 'POST', path: '/fetch_api_key', params: { username: 'email', password: 'password' } },
  { method: 'GET', path: '/server_settings', params: {} },
  { method: 'GET', path: '/users', params: { user_ids: 'intList', client_gravatar: 'bool' } },
  { method: 'GET', path: '/users/me', params: {} },
  { method: 'GET', path: '/users/:who', params: { client_gravatar: 'bool' } },
  {
    method: 'POST',
    path: '/users',
    params: { email: 'email', password: 'password', full_name: 'fullName' },
  },
  {
    method: 'PATCH',
    path: '/users/:user_id',
    params: { full_name: 'fullName', role: 'role', profile_data: 'jsonArray' },
  },
  { method: 'DELETE', path: '/users/:user_id', params: { deactivation_notification_comment: 'string' } },
  { method: 'POST', path: '/users/:user_id/reactivate', params: {} },
  { method: 'POST', path: '/users/me/api_key/regenerate', params: {} },
  { method: 'PATCH', path: '/settings', params: { full_name: 'fullName' } },
  { method: 'GET', path: '/streams', params: listFlags },
  { method: 'GET', path: '/streams/:stream_id', params: {} },
  { method: 'GET', path: '/get_stream_id', params: { stream: 'streamName' } },
  {
    method: 'PATCH',
    path: '/streams/:stream_id',
    params: {
      new_name: 'streamName',
      description: 'description',
      is_private: 'bool',
      history_public_to_subscribers: 'bool',
    },
  },
  { method: 'DELETE', path: '/streams/:stream_id', params: {} },
  { method: 'GET', path: '/streams/:stream_id/members', params: {} },
  { method: 'GET', path: '/users/me/subscriptions', params: { include_subscribers: 'includeSubscribers' } },
  {
    method: 'POST',
    path: '/users/me/subscriptions',
    params: {
      subscriptions: 'subscriptionsAdd',
      principals: 'principals',
      authorization_errors_fatal: 'bool',
      invite_only: 'bool',
      history_public_to_subscribers: 'bool',
      announce: 'bool',
    },
  },
  {
    method: 'DELETE',
    path: '/users/me/subscriptions',
    params: { subscriptions: 'subscriptionsRemove', principals: 'principals' },
  },
  { method: 'GET', path: '/users/:user_id/subscriptions/:stream_id', params: {} },
  {
    method: 'POST',
    path: '/register',
    params: {
      event_types: 'typeList',
      fetch_event_types: 'typeList',
      include_subscribers: 'includeSubscribers',
      client_capabilities: 'jsonObject',
      client_gravatar: 'bool',
      narrow: 'jsonArray',
      presence_history_limit_days: 'int',
    },
  },
  {
    method: 'GET',
    path: '/events',
    params: { queue_id: 'queueId', last_event_id: 'int', dont_block: 'dontBlock' },
  },
  { method: 'DELETE', path: '/events', params: { queue_id: 'queueId' } },
];

/** The world the fuzzer's valid values come from, fixed before generation. */
export interface World {
  userIds: number[];
  emails: string[];
  streamIds: number[];
  streamNames: string[];
  queueIds: string[];
}

/** Who a request authenticates as; resolved to credentials when it is sent (keys may change). */
export type AuthChoice =
  | { kind: 'as'; actor: string }
  | { kind: 'none' }
  | { kind: 'wrongKey'; actor: string }
  | { kind: 'raw'; header: string };

export type Encoding = 'query' | 'form' | 'multipart' | 'json' | 'jsonTyped' | 'split' | 'text' | 'odd';

/** One generated request, before encoding: what the fuzzer prints when something goes wrong. */
export interface FuzzCase {
  method: string;
  path: string;
  params: [string, string][];
  encoding: Encoding;
  contentType?: string;
  /** Replaces the encoded body, for malformed bodies. */
  rawBody?: string;
  auth: AuthChoice;
}

const deep = (open: string, inner: string, close: string, n: number) =>
  open.repeat(n) + inner + close.repeat(n);

/** Values that have broken parsers somewhere: types, encodings, sizes, nesting, special names. */
export const garbage: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      'null',
      'true',
      'false',
      'True',
      '1',
      '0',
      '-1',
      '-0',
      '1.5',
      '1e309',
      '-1e309',
      'NaN',
      'Infinity',
      '0x10',
      '9007199254740993',
      '99999999999999999999',
      '2147483648',
      '-2147483649',
      '[]',
      '{}',
      '[1,',
      '{"a":',
      '"',
      '"\\u0000"',
      '["a\\u0000b"]',
      '"\\ud800"',
      '[null]',
      '[{}]',
      '[[1]]',
      '{"name":1}',
      '[{"name":null}]',
      '[{"name":"x","description":5}]',
      '["\\ud800"]',
      '\u0000',
      'a\u0000b',
      '\ud800',
      '\udfff\ud800',
      '💩',
      'ＡＢＣ',
      '\u202e',
      '\t\n',
      '<script>',
      "'; DROP TABLE users;--",
      '%00',
      '%ZZ',
      '__proto__',
      'constructor',
      '{"__proto__":{"x":1}}',
      '{"constructor":{"prototype":1}}',
      'user1@127.0.0.1',
      'user0000000001@127.0.0.1',
      '@',
      'a@',
      '@b',
      'a@b',
      'a@@b.c',
      ' owner@example.com ',
      'OWNER@EXAMPLE.COM',
    ),
  },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 70_000 }).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 50, max: 60_000 }).map((n) => deep('[', '', ']', n)) },
  { weight: 1, arbitrary: fc.integer({ min: 50, max: 30_000 }).map((n) => deep('{"a":', '1', '}', n)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }).map((n) => JSON.stringify(Array(n).fill(1))) },
);

/** `arb` once in `n` times, otherwise undefined. */
const rarely = <T>(arb: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
const pick = <T>(xs: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...xs);
const json = <T>(arb: fc.Arbitrary<T>) => arb.map((v) => JSON.stringify(v));
const text = fc.string({ unit: 'grapheme', maxLength: 30 });
/** Text with a lone surrogate: valid JSON once escaped, but not text (nor storable as such). */
const broken = fc.tuple(text, fc.constantFrom('\ud800', '\udfff'), text).map(([a, b, c]) => a + b + c);

/** A plausible (mostly valid) value of a parameter kind, from the world where one exists. */
function valid(kind: ParamKind, w: World): fc.Arbitrary<string> {
  const name = fc.oneof(pick(w.streamNames), text, fc.string({ maxLength: 80 }), broken);
  const principal = fc.oneof(
    pick(w.userIds),
    pick(w.emails),
    fc.integer({ min: -5, max: 10_000 }),
    // Past 32 bits, and past exact doubles: ids are int4 in the database.
    fc.constantFrom(2 ** 31, 2 ** 53 + 2, 1e300, 1.5),
  );
  switch (kind) {
    case 'bool':
      return pick(['true', 'false']);
    case 'int':
      return fc.integer({ min: -100, max: 1000 }).map(String);
    case 'role':
      return pick(['100', '200', '400', '600', '300', '0']);
    case 'intList':
      return fc.oneof(json(fc.array(pick(w.userIds), { maxLength: 5 })), pick(w.userIds).map(String));
    case 'string':
      return text;
    case 'email':
      return fc.oneof(
        pick(w.emails),
        fc.emailAddress(),
        text.map((s) => `${s}@example.com`),
      );
    case 'password':
      return fc.oneof(pick(['owner-password', 'pw']), text);
    case 'fullName':
      return fc.oneof(text, fc.string({ maxLength: 120 }), broken, broken);
    case 'streamName':
      return name;
    case 'description':
      return fc.oneof(text, fc.string({ maxLength: 1100 }), broken, broken);
    case 'subscriptionsAdd':
      return json(
        fc.array(fc.record({ name, description: fc.option(text, { nil: undefined }) }), {
          minLength: 0,
          maxLength: 3,
        }),
      );
    case 'subscriptionsRemove':
      return json(fc.array(name, { maxLength: 3 }));
    case 'principals':
      return json(fc.array(principal, { maxLength: 3 }));
    case 'typeList':
      return json(fc.array(pick(['realm_user', 'subscription', 'stream', 'message', 'x']), { maxLength: 3 }));
    case 'jsonObject':
      return json(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }));
    case 'jsonArray':
      return json(fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }));
    case 'queueId':
      return fc.oneof(pick(w.queueIds), fc.uuid());
    // Never false when valid: a long poll holds one of the few request slots for the whole
    // CONCORD_EVENT_LONGPOLL_SECONDS. (Absent, it still long-polls, so that path is exercised.)
    case 'dontBlock':
      return fc.constant('true');
    case 'includeSubscribers':
      return pick(['true', 'false', 'partial']);
  }
}

/** Path segments for ids: real ones, unknown ones, and ones that are not ids at all. */
function idSegment(ids: number[], extra: fc.Arbitrary<string>[] = []): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: pick(ids).map(String) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 ** 31 - 1 }).map(String) },
    {
      weight: 2,
      arbitrary: pick([
        '0',
        '-1',
        '1.5',
        '1e3',
        'NaN',
        'abc',
        '99999999999999999999',
        '2147483648',
        '%00',
        '%ZZ',
        '%E0%A4%A',
        '%F0%9F%92%A9',
        '%20',
        'x'.repeat(400),
        '0001',
        '+1',
        'me',
      ]),
    },
    ...extra.map((arbitrary) => ({ weight: 2, arbitrary })),
  );
}

// BREW is not an HTTP method at all: Node's parser rejects it before Fastify sees the request.
const methods = ['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS', 'HEAD', 'BREW'];

const contentTypes = [
  'application/x-www-form-urlencoded; charset=utf-8',
  'APPLICATION/JSON',
  'application/json; charset=latin1',
  'multipart/form-data',
  'multipart/form-data; boundary=',
  `multipart/form-data; boundary=${'b'.repeat(300)}`,
  'text/plain',
  'text/html',
  'application/xml',
  'application/octet-stream',
  ';;',
  'x/y; a=b; a=c',
  '*/*',
];

/** The boundary the runner's multipart bodies use; some malformed bodies below reuse it. */
export const BOUNDARY = 'fuzzBoundary7MA4YWxkTrZu0gW';

const rawBodies = [
  '{',
  '{"a":1,"a":2}',
  '[]',
  '"str"',
  'null',
  '1',
  '{"email":{"a":1}}',
  '{"subscriptions":[{"name":"x"}]}',
  '\u0000\u0001\u0002',
  '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n',
  '--x--',
  'a=%&b=%ZZ&c',
  '=&=&&',
  deep('[', '', ']', 20_000),
  // A file part cut short, and a body over the 1 MiB limit.
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="a"; filename="f"\r\n\r\nxx`,
  `full_name=${'x'.repeat(1024 * 1024 + 10)}`,
];

/** The whole request generator over a world and the actors' names. */
export function fuzzCase(w: World, actors: string[]): fc.Arbitrary<FuzzCase> {
  const endpoint = pick(endpoints);
  return endpoint.chain((ep) => {
    const path = ep.path.replace(':user_id', '{u}').replace(':stream_id', '{s}').replace(':who', '{w}');
    const params = fc
      .tuple(
        ...Object.entries(ep.params).map(([key, kind]) =>
          fc.option(
            fc
              .oneof({ weight: 3, arbitrary: valid(kind, w) }, { weight: 1, arbitrary: garbage })
              .map((v): [string, string] => [key, v]),
            { freq: 4 },
          ),
        ),
      )
      .map((xs) => xs.filter((x): x is [string, string] => x !== null));
    const extraParams = fc.array(
      fc.tuple(
        fc.oneof(pick(['__proto__', 'constructor', 'toString', 'a[]', '', 'queue_id', 'role'])),
        garbage,
      ),
      { maxLength: 2 },
    );
    return fc.record({
      method: fc.oneof(
        { weight: 9, arbitrary: fc.constant(ep.method) },
        { weight: 1, arbitrary: pick(methods) },
      ),
      path: fc.oneof(
        {
          weight: 20,
          arbitrary: fc
            .tuple(
              idSegment(w.userIds),
              idSegment(w.streamIds),
              idSegment(w.userIds, [pick(w.emails).map(encodeURIComponent), fc.emailAddress()]),
            )
            .map(([u, s, who]) => path.replace('{u}', u).replace('{s}', s).replace('{w}', who)),
        },
        { weight: 1, arbitrary: fc.webSegment().map((seg) => `/${seg}`) },
      ),
      params: fc
        .tuple(params, extraParams, fc.boolean())
        // A duplicated key: which copy wins must not matter for the server's health.
        .map(([p, extra, dup]) => [...p, ...extra, ...(dup && p.length > 0 ? [p[0]!] : [])]),
      encoding: fc.constantFrom<Encoding>(
        'query',
        'form',
        'form',
        'multipart',
        // JSON bodies carry what form encoding cannot (lone surrogates, typed values): weighted up.
        'json',
        'json',
        'jsonTyped',
        'jsonTyped',
        'split',
        'text',
        'odd',
      ),
      // Mostly the encoding's own type and body; now and then a wrong type or a malformed body.
      contentType: rarely(pick(contentTypes), 8),
      rawBody: rarely(pick(rawBodies), 15),
      auth: fc.oneof(
        { weight: 12, arbitrary: pick(actors).map((actor): AuthChoice => ({ kind: 'as', actor })) },
        { weight: 1, arbitrary: fc.constant<AuthChoice>({ kind: 'none' }) },
        { weight: 1, arbitrary: pick(actors).map((actor): AuthChoice => ({ kind: 'wrongKey', actor })) },
        {
          weight: 1,
          arbitrary: fc
            .oneof(
              pick([
                'Basic',
                'Basic ',
                'Basic !!!',
                'Bearer abc',
                'basic Og==',
                'Basic bm9jb2xvbg==',
                'Digest x',
              ]),
              fc
                .string({ unit: 'binary', maxLength: 30 })
                .map((s) => `Basic ${Buffer.from(s).toString('base64')}`),
              fc.string({ maxLength: 30 }).map((s) => `Basic ${s}`),
            )
            .map((header): AuthChoice => ({ kind: 'raw', header })),
        },
      ),
    });
  });
}
