import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadinessStatus } from '../../src/readiness/readiness.js';
import { freshDir } from '../support/backends.js';
import type { BigWorkspace } from '../support/bigWorkspace.js';
import { seedBigWorkspace } from '../support/bigWorkspace.js';
import { zulipContract } from '../support/openapi.js';
import type { ServerProcess } from '../support/process.js';
import { spawnServer } from '../support/process.js';

const USERS = Number(process.env.CONCORD_WARMUP_USERS ?? 100_000);
const PER_USER = 10;

/** Reads an SSE response, calling `onEvent` with each `data:` JSON, until it returns true. */
async function readEvents(res: Response, onEvent: (status: ReadinessStatus) => boolean): Promise<void> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      if (data && onEvent(JSON.parse(data) as ReadinessStatus)) {
        await reader.cancel();
        return;
      }
    }
  }
}

/*
 * Incident 5: a node started on a large workspace answers /readyz 503 with progress, data endpoints
 * 503 with Retry-After, pushes "ready" over the status stream when it flips, and never answers a
 * data request from a cold cache.
 */
describe(`warm-up on ${USERS.toLocaleString('en')} users and ${(USERS * PER_USER).toLocaleString('en')} subscriptions`, () => {
  const dir = freshDir('concord-warmup-');
  let ws: BigWorkspace;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    ws = await seedBigWorkspace(dir.dir, { users: USERS, streams: 1000, perUser: PER_USER });
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    dir.remove();
  });

  it('503 with progress and Retry-After until warm, then "ready" pushed, and data served from a warm cache', async () => {
    server = await spawnServer(
      {
        ...process.env,
        CONCORD_DATA_DIR: dir.dir,
        CONCORD_LOG_LEVEL: 'warn',
        CONCORD_SECRET: 'warmup-test-secret-warmup-test-secret-01',
        // Lower than this warm-up takes: the slow warm-up warning and metric must show.
        CONCORD_WARMUP_WARN_SECONDS: '1',
      },
      [],
      'listening',
    );
    const url = server.url;
    const auth = {
      authorization: `Basic ${Buffer.from(`${ws.owner.email}:${ws.owner.apiKey}`).toString('base64')}`,
    };

    // The status stream, opened while warming: every status until "ready".
    const streamed: ReadinessStatus[] = [];
    const stream = await fetch(`${url}/api/v1/concord/status/stream`);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const streaming = readEvents(stream, (s) => {
      streamed.push(s);
      return s.status === 'ready';
    });

    // Poll readiness and a data endpoint until ready; record what warming looked like.
    const readyz: { status: number; body: ReadinessStatus }[] = [];
    const data: { status: number; retryAfter: string | null; body: { code?: string; msg?: string } }[] = [];
    for (;;) {
      const r = await fetch(`${url}/readyz`);
      const body = (await r.json()) as ReadinessStatus;
      readyz.push({ status: r.status, body });
      if (r.status === 200) break;
      const d = await fetch(`${url}/api/v1/users/${ws.owner.id}`, { headers: auth });
      data.push({
        status: d.status,
        retryAfter: d.headers.get('retry-after'),
        body: (await d.json()) as never,
      });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await streaming;

    // /readyz said 503 with progress while warming...
    const warming = readyz.filter((r) => r.status === 503);
    expect(warming.length).toBeGreaterThan(0);
    expect(warming.every((r) => r.body.status === 'warming')).toBe(true);
    expect(warming.some((r) => r.body.phase === 'loading' && (r.body.progress.loaded.users ?? 0) > 0)).toBe(
      true,
    );
    expect(warming.some((r) => r.body.progress.total.subscriptions === USERS * PER_USER)).toBe(true);
    expect(Math.max(...warming.map((r) => r.body.elapsedMs))).toBeGreaterThan(0);
    // ...data endpoints answered 503 with Retry-After in Zulip's error shape...
    // (data[i] was sent between readyz[i] and readyz[i + 1]: a node never goes back from ready to
    // warming, so if readyz[i + 1] still said 503, data[i] was answered while warming.)
    const whileWarming = data.filter((_, i) => readyz[i + 1]!.status === 503);
    expect(whileWarming.length).toBeGreaterThan(0);
    for (const d of whileWarming) {
      expect(d.status).toBe(503);
      expect(Number(d.retryAfter)).toBeGreaterThan(0);
      expect(d.body).toMatchObject({ result: 'error', code: 'SERVICE_UNAVAILABLE' });
      expect(d.body.msg).toMatch(/starting up/);
      zulipContract().validateResponse('GET', `/users/${ws.owner.id}`, d.status, d.body);
    }
    // ...the stream pushed progress, then "ready", in order.
    expect(streamed[0]!.status).toBe('warming');
    expect(streamed.some((s) => s.phase === 'loading')).toBe(true);
    expect(streamed.at(-1)!.status).toBe('ready');
    const ready = readyz.at(-1)!.body;
    expect(ready.phases).toHaveProperty('loading');
    expect(ready.phases).toHaveProperty('catching-up');
    console.log(`warm-up phases (ms): ${JSON.stringify(ready.phases)}, total ${ready.elapsedMs} ms`);

    // Now data: served from the cache loaded during warm-up, not from the database.
    const user = await fetch(`${url}/api/v1/users/${ws.owner.id + 12345}`, { headers: auth });
    expect(user.status).toBe(200);
    expect(((await user.json()) as { user: { full_name: string } }).user.full_name).toBe('Person 12345');
    const members = await fetch(`${url}/api/v1/streams/${ws.sample.streamId}/members`, { headers: auth });
    expect(((await members.json()) as { subscribers: number[] }).subscribers).toHaveLength(ws.sample.members);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    expect(value('concord_cache_loads_total')).toBe(0);
    expect(value('concord_cache_lookups_total\\{tier="l1",result="hit"\\}')).toBeGreaterThanOrEqual(3);
    expect(value('concord_warmup_seconds')).toBeGreaterThan(0);
    expect(value('concord_ready')).toBe(1);
    expect(value('concord_warmup_slow')).toBe(1);
    expect(server.output()).toMatch(/"msg":"slow warm-up"/);
    expect(value('concord_warmup_phase_seconds\\{phase="loading"\\}')).toBeGreaterThan(0);
  }, 180_000);
});
