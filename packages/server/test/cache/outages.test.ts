import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends } from '../support/backends.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';
import type { TcpProxy } from '../support/tcpProxy.js';
import { startTcpProxy } from '../support/tcpProxy.js';
import type { TestRedis } from '../support/redisServer.js';
import { startTestRedis } from '../support/redisServer.js';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function metric(t: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

/** Polls `check` every 100 ms until it returns true, for at most `ms`. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await pause(100);
  }
  return Date.now() - t0;
}

describe.skipIf(!backends().includes('postgres'))('outages in cluster mode', () => {
  describe('PostgreSQL away', () => {
    let proxy: TcpProxy;
    let t: TestServer;
    beforeAll(async () => {
      const pgUrl = new URL(process.env.CONCORD_TEST_PG!);
      proxy = await startTcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
      // A test server whose every database connection goes through the proxy.
      t = await startTestServer('postgres', { CONCORD_STALL_SECONDS: '2' }, { pgPort: proxy.port });
    });
    afterAll(async () => {
      await proxy?.up().catch(() => {});
      await t?.close();
      await proxy?.close();
    });

    it('data requests get 503 with a clear error while it is away, and the node recovers without a restart', async () => {
      const member = await t.createUser({ fullName: 'Pat Before' });
      expect((await t.api('GET', `/users/${member.id}`)).status).toBe(200);

      await proxy.down();
      const seen: { status: number; code?: string; msg?: string }[] = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 3000) {
        for (const [method, path] of [
          ['GET', '/streams'],
          ['GET', `/users/${member.id}`],
          ['PATCH', `/users/${member.id}`],
        ] as const) {
          const r = await t.api(
            method,
            path,
            method === 'PATCH' ? { form: { full_name: 'Pat During' } } : {},
          );
          seen.push({ status: r.status, code: r.body.code, msg: r.body.msg });
        }
        await pause(100);
      }
      // Never a 500; every failure is a 503 that says why, and writes never succeed meanwhile.
      expect(seen.filter((s) => s.status !== 200 && s.status !== 503)).toEqual([]);
      const unavailable = seen.filter((s) => s.status === 503);
      expect(unavailable.length).toBeGreaterThan(0);
      for (const s of unavailable) {
        expect(s.code).toBe('SERVICE_UNAVAILABLE');
        expect(s.msg).toMatch(/database|not ready/i);
      }
      expect(seen.at(-1)!.status).toBe(503);
      const readyz = await fetch(`${t.url}/readyz`);
      expect(readyz.status).toBe(503);
      expect(((await readyz.json()) as { reason: string }).reason).toMatch(/database unavailable/);

      await proxy.up();
      const recovered = await eventually(
        async () =>
          (await t.api('PATCH', `/users/${member.id}`, { form: { full_name: 'Pat After' } })).status === 200,
        30_000,
        'writes after PostgreSQL returned',
      );
      expect((await t.api('GET', `/users/${member.id}`)).body.user.full_name).toBe('Pat After');
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
      console.log(
        `PostgreSQL outage: ${unavailable.length} answers were 503; recovered ${recovered} ms after it returned`,
      );
    }, 60_000);
  });

  describe('Redis away', () => {
    let redis: TestRedis;
    let t: TestServer;
    beforeAll(async () => {
      redis = await startTestRedis();
      t = await startTestServer('postgres', { REDIS_URL: redis.url });
    });
    afterAll(async () => {
      await t?.close();
      await redis?.close();
    });

    it('answers stay correct from L1 and the database while Redis is away, and L2 is used again when it returns', async () => {
      const member = await t.createUser({ fullName: 'Quinn Before' });
      expect((await t.api('GET', `/users/${member.id}`)).body.user.full_name).toBe('Quinn Before');
      expect(await metric(t, 'concord_cache_l2_available')).toBe(1);

      await redis.kill();
      await eventually(
        async () => (await metric(t, 'concord_cache_l2_available')) === 0,
        10_000,
        'L2 marked down',
      );
      expect(
        (await t.api('PATCH', `/users/${member.id}`, { form: { full_name: 'Quinn During' } })).status,
      ).toBe(200);
      expect((await t.api('GET', `/users/${member.id}`)).body.user.full_name).toBe('Quinn During');
      const other = await t.createUser({ fullName: 'Rae Uncached' });
      expect((await t.api('GET', `/users/${other.id}`)).body.user.full_name).toBe('Rae Uncached');
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);

      await redis.start();
      await eventually(async () => (await metric(t, 'concord_cache_l2_available')) === 1, 15_000, 'L2 back');
      const missesBefore = await metric(t, 'concord_cache_lookups_total\\{tier="l2",result="miss"\\}');
      const third = await t.createUser({ fullName: 'Sam After' });
      expect((await t.api('GET', `/users/${third.id}`)).body.user.full_name).toBe('Sam After');
      expect(await metric(t, 'concord_cache_lookups_total\\{tier="l2",result="miss"\\}')).toBeGreaterThan(
        missesBefore,
      );
      expect(
        (await t.api('PATCH', `/users/${member.id}`, { form: { full_name: 'Quinn After' } })).status,
      ).toBe(200);
      expect((await t.api('GET', `/users/${member.id}`)).body.user.full_name).toBe('Quinn After');
    }, 60_000);
  });
});
