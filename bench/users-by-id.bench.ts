import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOwner } from './lib/owner.js';
import { loadTest, startChild, startConcord } from './lib/processes.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * GET /api/v1/users/{id} on Concord (SQLite, 1,000 users, Basic auth, warm cache) against the
 * limit: a bare Fastify route answering the same bytes (issue 4's goal: ratio >= 0.7).
 * Alternating rounds, each side loaded by autocannon from its own process.
 */
const USERS = Number(process.env.BENCH_USERS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 16;
const root = fileURLToPath(new URL('..', import.meta.url));

const concord = await startConcord();
try {
  const { authorization: auth } = await createOwner(concord.env);
  const post = (path: string, params: Record<string, string>) =>
    fetch(`${concord.url}/api/v1${path}`, {
      method: 'POST',
      headers: { authorization: auth },
      body: new URLSearchParams(params),
    }).then((r) => r.json() as Promise<{ user_id: number }>);
  let target = 0;
  for (let i = 1; i < USERS; i++) {
    const u = await post('/users', {
      email: `person${i}@example.com`,
      full_name: `Person ${i}`,
      password: `password-${i}`,
    });
    if (i === Math.floor(USERS / 2)) target = u.user_id;
  }
  const path = `/api/v1/users/${target}`;
  const res = await fetch(`${concord.url}${path}`, { headers: { authorization: auth } });
  const bytes = Buffer.from(await res.arrayBuffer());
  const bodyFile = join(concord.dataDir, 'body.json');
  writeFileSync(bodyFile, bytes);
  const bare = await startChild(
    join(root, 'bench/lib/bare-server.ts'),
    [bodyFile, res.headers.get('content-type') ?? 'application/json'],
    /bare server at (http:\/\/\S+)/,
  );
  try {
    const load = (url: string, seconds: number) =>
      loadTest({ url, headers: { authorization: auth }, seconds, connections: CONNECTIONS });
    await load(`${concord.url}${path}`, 2);
    await load(`${bare.match[1]}${path}`, 2);
    const c: number[] = [];
    const b: number[] = [];
    const rows: Record<string, string | number>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const x = await load(`${concord.url}${path}`, SECONDS);
      const y = await load(`${bare.match[1]}${path}`, SECONDS);
      if (x.errors || x.non2xx || y.errors || y.non2xx)
        throw new Error(`failed requests: ${JSON.stringify({ x, y })}`);
      c.push(x.requestsPerSecond);
      b.push(y.requestsPerSecond);
      rows.push({
        round: r + 1,
        'concord req/s': Math.round(x.requestsPerSecond),
        'concord p99 ms': x.latencyP99,
        'bare req/s': Math.round(y.requestsPerSecond),
        'bare p99 ms': y.latencyP99,
      });
    }
    printTable(
      `GET /api/v1/users/{id}, ${bytes.length} bytes, ${USERS} users, ${CONNECTIONS} connections; ` +
        `${cpus().length} cores shared by server and load generator (one process each)`,
      rows,
    );
    const sc = summarize(c);
    const sb = summarize(b);
    await report('users-by-id', [
      {
        name: 'users-by-id',
        metric: 'requests_per_s',
        concord: sc.median,
        reference: 'bare-fastify-same-bytes',
        reference_value: sb.median,
        ratio: sc.median / sb.median,
        higher_is_better: true,
        goal: '>=0.7',
        rounds: ROUNDS,
        spread: Math.max(sc.spread, sb.spread),
      },
    ]);
  } finally {
    await bare.stop();
  }
} finally {
  await concord.stop();
}
