import { join } from 'node:path';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import SqliteDatabase from 'better-sqlite3';
import pino from 'pino';
import { loadConfig } from '../packages/server/src/config/config.js';
import { startConcord } from '../packages/server/src/server.js';
import { freshDir } from '../packages/server/test/support/backends.js';
import { seedBigWorkspace } from '../packages/server/test/support/bigWorkspace.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * Warm-up of a node on an embedded workspace of 100,000 users and 1,000,000 subscriptions: from
 * start to ready (migrations checked, caches loaded at one log position, caught up), against the
 * limit: a raw `SELECT` of the same rows (users, subscriptions) with better-sqlite3. Alternating
 * rounds in this process.
 */
const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const PER_USER = 10;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const dir = freshDir('concord-bench-warmup-');
try {
  const t0 = performance.now();
  await seedBigWorkspace(dir.dir, { users: USERS, streams: 1000, perUser: PER_USER });
  console.log(
    `seeded ${USERS} users, ${USERS * PER_USER} subscriptions in ${Math.round(performance.now() - t0)} ms`,
  );
  const config = loadConfig([], {
    CONCORD_DATA_DIR: dir.dir,
    CONCORD_PORT: '0',
    CONCORD_SECRET: 'bench-secret-bench-secret-bench-secret-01',
  });

  const concord = async () => {
    const start = performance.now();
    const node = await startConcord(config, { logger: pino({ level: 'silent' }) });
    const ms = performance.now() - start;
    const phases = node.readiness.status().phases;
    await node.close();
    return { ms, phases };
  };
  const raw = () => {
    const start = performance.now();
    const db = new SqliteDatabase(join(dir.dir, 'concord.sqlite'), { readonly: true });
    const users = db.prepare('SELECT * FROM users').all();
    const subs = db.prepare('SELECT id, stream_id, user_id FROM subscriptions').all();
    db.close();
    if (users.length !== USERS || subs.length !== USERS * PER_USER) throw new Error('unexpected row counts');
    return performance.now() - start;
  };

  await concord();
  raw();
  const c: number[] = [];
  const r: number[] = [];
  const rows: Record<string, string | number>[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const x = await concord();
    const y = raw();
    c.push(x.ms);
    r.push(y);
    rows.push({
      round: i + 1,
      'concord start → ready ms': Math.round(x.ms),
      'loading ms': x.phases.loading ?? 0,
      'raw SELECT ms': Math.round(y),
    });
  }
  printTable(
    `warm-up on ${USERS} users / ${USERS * PER_USER} subscriptions (SQLite); one process on ${cpus().length} cores`,
    rows,
  );
  const sc = summarize(c);
  const sr = summarize(r);
  await report('warmup', [
    {
      name: 'warmup-100k-users-1m-subs',
      metric: 'ms_to_ready',
      concord: sc.median,
      reference: 'raw-select-same-rows',
      reference_value: sr.median,
      ratio: sc.median / sr.median,
      higher_is_better: false,
      goal: '<=2.0',
      rounds: ROUNDS,
      spread: Math.max(sc.spread, sr.spread),
    },
  ]);
} finally {
  dir.remove();
}
