import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { basic, rawRequest } from '../api/raw-request.js';
import type { Backend } from '../support/backends.js';
import { backends } from '../support/backends.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';
import { consistencyProblems, presentedUserProblem } from './consistency.js';
import type { World } from './model.js';
import { fuzzCase } from './model.js';
import type { Keyring } from './runner.js';
import { responseProblem, runCases } from './runner.js';

/**
 * Sends thousands of random requests over real HTTP and checks that the server never answers
 * 5xx, never drops a connection, always answers in Zulip's error shape, stays alive, and leaves
 * its data consistent. Reproduce a run with CONCORD_FUZZ_SEED=<seed printed below>.
 */
const runs = Number(process.env.CONCORD_FUZZ_RUNS ?? 10_000);
const pgRuns = Number(process.env.CONCORD_FUZZ_PG_RUNS ?? 1_000);
// A fixed default keeps the suite repeatable; set CONCORD_FUZZ_SEED to explore other corners.
// Requests are generated from the seed alone; with several in flight their interleaving (and so
// the server's state when each arrives) can still differ between two runs of one seed.
const seed = Number(process.env.CONCORD_FUZZ_SEED ?? 20_261_123);
const CONCURRENCY = 4;

/** A few users of each role, channels and event queues, so valid values reach the commands. */
async function buildWorld(t: TestServer): Promise<{ world: World; keys: Keyring }> {
  const keys: Keyring = new Map([
    ['owner', { id: t.owner.id, email: t.owner.email, apiKey: t.owner.apiKey }],
  ]);
  const roles: [string, number][] = [
    ['admin', Role.ADMINISTRATOR],
    ['member', Role.MEMBER],
    ['guest', Role.GUEST],
    ['deactivated', Role.MEMBER],
    ['victim', Role.MEMBER],
  ];
  const ids = [t.owner.id];
  for (const [name, role] of roles) {
    const u = await t.createUser({ email: `${name}@example.com`, fullName: `Fuzz ${name}`, role });
    keys.set(name, { id: u.id, email: u.email, apiKey: u.apiKey });
    ids.push(u.id);
  }
  const placeholder = await t.createUser({ email: null, fullName: 'No Address' });
  ids.push(placeholder.id);
  // Bystanders dilute the actors among valid ids, so that random deactivations mostly hit them
  // and the actors stay able to reach the commands.
  for (let i = 0; i < 10; i++) ids.push((await t.createUser({ fullName: `Bystander ${i}` })).id);
  expect((await t.api('DELETE', `/users/${ids[4]}`)).status).toBe(200);
  const made = await t.api('POST', '/users/me/subscriptions', {
    form: { subscriptions: [{ name: 'general' }, { name: 'random' }], principals: [ids[2], ids[3]] },
  });
  expect(made.status).toBe(200);
  expect(
    (
      await t.api('POST', '/users/me/subscriptions', {
        form: { subscriptions: [{ name: 'secret' }], invite_only: true },
      })
    ).status,
  ).toBe(200);
  const streams = (await t.api('GET', '/streams', { query: { include_all_active: true } })).body.streams as {
    stream_id: number;
    name: string;
  }[];
  const queueIds: string[] = [];
  for (const actor of ['owner', 'member']) {
    const k = keys.get(actor)!;
    const reg = await t.api('POST', '/register', { as: { password: '', ...k } });
    expect(reg.status).toBe(200);
    queueIds.push(reg.body.queue_id as string);
  }
  return {
    world: {
      userIds: ids,
      emails: [...[...keys.values()].map((k) => k.email), `user${placeholder.id}@127.0.0.1`],
      streamIds: streams.map((s) => s.stream_id),
      streamNames: streams.map((s) => s.name),
      queueIds,
    },
    keys,
  };
}

async function fuzz(backend: Backend, count: number): Promise<void> {
  const t = await startTestServer(backend, {
    // One client address sends every request; the failed-login limit would soon block it all.
    CONCORD_LOGIN_RATE_LIMIT: '10000',
    CONCORD_EVENT_LONGPOLL_SECONDS: '2',
  });
  try {
    const { world, keys } = await buildWorld(t);
    const cases = fc.sample(fuzzCase(world, [...keys.keys()]), { numRuns: count, seed });
    console.log(`api fuzz on ${backend}: ${count} requests, seed ${seed} (CONCORD_FUZZ_SEED to replay)`);
    const report = await runCases(t.url, cases, keys, CONCURRENCY, async () => {
      const rows = await t.server.store.db.selectFrom('users').select(['id', 'api_key']).execute();
      const byId = new Map(rows.map((r) => [r.id, r.api_key]));
      for (const k of keys.values()) k.apiKey = byId.get(k.id)!;
    });
    const statuses = [...report.byStatus].sort((a, b) => a[0] - b[0]);
    console.log(`api fuzz on ${backend}: statuses ${JSON.stringify(statuses)}`);
    console.log(`api fuzz on ${backend}: codes ${JSON.stringify([...report.byCode].sort())}`);
    for (const p of report.problems.slice(0, 10))
      console.log(`problem #${p.index}: ${p.problem}\n  ${JSON.stringify(p.fuzzCase).slice(0, 600)}`);
    expect(report.sent).toBe(count);
    expect([...new Set(report.problems.map((p) => p.problem.slice(0, 160)))]).toEqual([]);
    // Not vacuous: the run reached successful commands and the main kinds of refusal.
    expect(report.byStatus.get(200) ?? 0).toBeGreaterThan(count / 20);
    for (const code of ['BAD_REQUEST', 'INVALID_API_KEY', 'UNAUTHORIZED', 'NOT_FOUND'])
      expect(report.byCode.get(code) ?? 0, code).toBeGreaterThan(0);

    expect((await rawRequest(t.url, { method: 'GET', path: '/livez' })).status).toBe(200);
    expect(await consistencyProblems(t.server.log)).toEqual([]);
    // Every user the API lists still passes validation; asked as any actor the run left active.
    let listed: { members: Parameters<typeof presentedUserProblem>[0][] } | undefined;
    for (const k of keys.values()) {
      const res = await rawRequest(t.url, {
        method: 'GET',
        path: '/api/v1/users',
        headers: { authorization: basic(k.email, k.apiKey) },
      });
      if (res.status === 200) listed = res.json;
    }
    expect(listed?.members.length).toBe(
      await t.server.store.db
        .selectFrom('users')
        .select('id')
        .execute()
        .then((r) => r.length),
    );
    expect(listed!.members.map((u) => presentedUserProblem(u)).filter((p) => p !== null)).toEqual([]);
  } finally {
    await t.close();
  }
}

describe('API fuzz', () => {
  it(`sends ${runs} random requests to SQLite without a 5xx, a crash or inconsistent data`, async () => {
    await fuzz('sqlite', runs);
  }, 120_000);

  it.runIf(backends().includes('postgres'))(
    `sends ${pgRuns} random requests to PostgreSQL without a 5xx, a crash or inconsistent data`,
    async () => {
      await fuzz('postgres', pgRuns);
    },
    120_000,
  );
});

describe('fuzz checks (negative controls)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('flags a 5xx, a non-Zulip error body and a code whose status differs', () => {
    const res = (status: number, json: unknown) => ({
      status,
      headers: {},
      text: JSON.stringify(json),
      json,
    });
    expect(
      responseProblem('GET', res(500, { result: 'error', msg: 'x', code: 'INTERNAL_SERVER_ERROR' })),
    ).toMatch(/server error/);
    expect(responseProblem('GET', res(400, { error: 'Bad Request', statusCode: 400 }))).toMatch(/result/);
    expect(responseProblem('GET', res(401, { result: 'error', msg: 'x', code: 'BAD_REQUEST' }))).toMatch(
      /401 was sent/,
    );
    expect(responseProblem('GET', res(400, { result: 'error', msg: 'x', code: 'BAD_REQUEST' }))).toBeNull();
  });

  it('finds an inconsistency when a row changes behind the change log', async () => {
    expect(await consistencyProblems(t.server.log)).toEqual([]);
    await t.server.store.db
      .updateTable('users')
      .set({ full_name: 'Changed Behind' })
      .where('id', '=', t.owner.id)
      .execute();
    expect((await consistencyProblems(t.server.log)).join('\n')).toMatch(/user 1: row/);
  });
});
