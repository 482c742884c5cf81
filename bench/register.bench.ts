import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startConcord } from './lib/processes.js';
import { printTable, report, summarize } from './lib/report.js';
import { seedWorkspace } from './lib/seed.js';

/**
 * POST /api/v1/register (include_subscribers) for a realm of 10,000 users and 500 channels, end to
 * end over HTTP, against the limit: JSON.stringify of the same state (the parsed response).
 */
const USERS = Number(process.env.BENCH_USERS ?? 10_000);
const CHANNELS = Number(process.env.BENCH_CHANNELS ?? 500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PER_ROUND = 10;

const dataDir = mkdtempSync(join(tmpdir(), 'concord-bench-register-'));
const seedStart = performance.now();
const who = await seedWorkspace(dataDir, { users: USERS, channels: CHANNELS, membersPerChannel: 50 });
console.log(
  `seeded ${USERS} users and ${CHANNELS} channels in ${Math.round(performance.now() - seedStart)} ms`,
);
const server = await startConcord({ CONCORD_DATA_DIR: dataDir });
try {
  const auth = `Basic ${Buffer.from(`${who.memberEmail}:${who.memberApiKey}`).toString('base64')}`;
  const call = async (method: string, path: string, params: Record<string, string>) => {
    const res = await fetch(`${server.url}/api/v1${path}`, {
      method,
      headers: { authorization: auth },
      body: new URLSearchParams(params),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text.slice(0, 200)}`);
    return text;
  };
  const registerOnce = async () => {
    const t0 = performance.now();
    const text = await call('POST', '/register', { include_subscribers: 'true' });
    const ms = performance.now() - t0;
    const body = JSON.parse(text) as { queue_id: string };
    await call('DELETE', '/events', { queue_id: body.queue_id });
    return { ms, body, bytes: text.length };
  };
  const { body, bytes } = await registerOnce();
  for (let i = 0; i < 3; i++) await registerOnce();
  for (let i = 0; i < 50; i++) JSON.stringify(body);

  const c: number[] = [];
  const s: number[] = [];
  const rows: Record<string, string | number>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const cs: number[] = [];
    const ss: number[] = [];
    for (let i = 0; i < PER_ROUND; i++) {
      cs.push((await registerOnce()).ms);
      const t0 = performance.now();
      JSON.stringify(body);
      ss.push(performance.now() - t0);
    }
    const cm = summarize(cs).median;
    const sm = summarize(ss).median;
    c.push(cm);
    s.push(sm);
    rows.push({ round: r + 1, 'register p50 ms': cm.toFixed(1), 'JSON.stringify p50 ms': sm.toFixed(2) });
  }
  printTable(
    `register of ${USERS} users / ${CHANNELS} channels (${(bytes / 1e6).toFixed(1)} MB body); ` +
      `${cpus().length} cores: server process and this client process`,
    rows,
  );
  const sc = summarize(c);
  const ss = summarize(s);
  await report('register', [
    {
      name: 'register-10k-users',
      metric: 'latency_p50_ms',
      concord: sc.median,
      reference: 'JSON.stringify-same-state',
      reference_value: ss.median,
      ratio: sc.median / ss.median,
      higher_is_better: false,
      rounds: ROUNDS,
      spread: Math.max(sc.spread, ss.spread),
    },
  ]);
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
