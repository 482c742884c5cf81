import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import SqliteDatabase from 'better-sqlite3';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import { spawnWorker } from './children.js';
import { freshJobDb, testOptions, until } from './fixture.js';
import { PAGES_JOB, createJobData } from './pages.js';

/**
 * How often a SIGSTOP at a random instant catches a SQLite worker inside a write, holding the
 * database's one write lock (README, "A worker stopped mid-write"). A measurement, not a test:
 *
 *   npx tsx packages/server/test/jobs/stop-duty.ts [pageMs=0] [rows=20] [stops=200]
 *
 * A worker runs the multi-page test job back to back (`pageMs` between its pages); the script
 * stops it at random instants and tries to take the write lock from another connection without
 * waiting.
 */
const pageMs = Number(process.argv[2] ?? 0);
const rows = Number(process.argv[3] ?? 20);
const stops = Number(process.argv[4] ?? 200);

const isStopped = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
};

const db = await freshJobDb('sqlite');
await createJobData(db.log);
const runner = new JobRunner({ log: db.log, realmId: db.realmId, options: testOptions() });
for (let i = 0; i < 400; i++)
  await runner.enqueue({ kind: PAGES_JOB, payload: { pages: 50, rows, pageMs, seed: i } });
const worker = spawnWorker(db, { leaseMs: 30_000, concurrency: 2 });
await worker.ready;
await until(() => worker.lines.some((l) => l.startsWith('page ')), 20_000, 'the first page');
const probe = new SqliteDatabase(db.where.sqliteFile!);
probe.pragma('busy_timeout = 0');
let inside = 0;
for (let i = 0; i < stops; i++) {
  await sleep(5 + Math.random() * 40);
  worker.child.kill('SIGSTOP');
  await until(() => isStopped(worker.child.pid!), 5000, 'the worker to stop');
  try {
    probe.exec('BEGIN IMMEDIATE');
    probe.exec('ROLLBACK');
  } catch {
    inside++;
  }
  worker.child.kill('SIGCONT');
}
const pages = worker.lines.filter((l) => l.startsWith('page ')).length;
console.log(
  `[stop-duty sqlite pageMs=${pageMs} rows=${rows}] ${inside}/${stops} random stops held the write lock ` +
    `(${((100 * inside) / stops).toFixed(1)} %); ${pages} pages written`,
);
probe.close();
await worker.stop();
await db.cleanup();
