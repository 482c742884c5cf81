import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { createUser } from '../../src/domain/users/createUser.js';
import { createSource } from '../../src/jobs/directory/sources.js';
import { DIRECTORY_SYNC_JOB, syncKey } from '../../src/jobs/directory/sync.js';
import { enqueueJob } from '../../src/jobs/runner/enqueue.js';
import type { JobDb } from '../jobs/fixture.js';
import { freshJobDb, testOptions } from '../jobs/fixture.js';
import { backends } from '../support/backends.js';
import type { Slapd } from '../support/slapd.js';
import { generateDirectory, startSlapd } from '../support/slapd.js';
import { changesSince, channelMembers, linkedUsers } from './fixture.js';

const KILLS = 50;
const PAGE_SIZE = 20;
const bundle = fileURLToPath(
  new URL('../../node_modules/.cache/concord-directory/sync-worker.mjs', import.meta.url),
);

interface Worker {
  child: ChildProcess;
  lines: string[];
  ready: Promise<void>;
  /** Resolves when the worker has printed `n` more lines starting with `word` (or `done`). */
  after(word: string, n: number): Promise<'seen' | 'done'>;
  /** Resolves when the worker has printed at least one line starting with `word` (or `done`). */
  once(word: string): Promise<'seen' | 'done'>;
  exited: Promise<unknown>;
}

function spawnSyncWorker(db: JobDb): Worker {
  const child = spawn(process.execPath, [bundle, JSON.stringify({ where: db.where, pageSize: PAGE_SIZE })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      for (const w of waiters.splice(0)) w();
    }
  });
  const exited = once(child, 'exit');
  const waitFor = (pred: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => (pred() ? resolve() : waiters.push(check));
      check();
    });
  return {
    child,
    lines,
    exited,
    ready: waitFor(() => lines.includes('ready')),
    async after(word, n) {
      const start = lines.filter((l) => l.startsWith(word)).length;
      await Promise.race([
        waitFor(
          () =>
            lines.some((l) => l.startsWith('done')) ||
            lines.filter((l) => l.startsWith(word)).length >= start + n,
        ),
        exited,
      ]);
      return lines.some((l) => l.startsWith('done')) ? 'done' : 'seen';
    },
    once(word) {
      return this.after(word, lines.some((l) => l.startsWith(word)) ? 0 : 1);
    },
  };
}

/** A deterministic pseudo-random sequence, so a failure replays. */
function rng(seed: number) {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

/**
 * Workers running a directory sync are killed with SIGKILL at random points (while reading LDAP,
 * between pages, mid-page); each time another worker takes the job over once the lease expires.
 * The sync ends succeeded and the data equals an uninterrupted sync's: every user and channel
 * created exactly once, every membership right.
 */
describe.each(backends())('directory sync killed by SIGKILL on %s', (backend) => {
  let slapd: Slapd;
  let db: JobDb;
  const dir = generateDirectory(2400, 48);
  beforeAll(async () => {
    buildSync({
      entryPoints: [fileURLToPath(new URL('./sync-worker.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: bundle,
      logLevel: 'silent',
    });
    [slapd, db] = await Promise.all([startSlapd(dir), freshJobDb(backend)]);
  });
  afterAll(async () => {
    await db?.cleanup();
    await slapd?.stop();
  });

  test(`${KILLS} kills, then it completes with the data of an uninterrupted sync`, async () => {
    const { log, realmId } = db;
    const owner = (
      await log.run(realmId, (ctx) =>
        createUser(
          ctx,
          null,
          { email: 'owner@example.com', fullName: 'Owner', role: Role.OWNER },
          { passwordHashCost: 4 },
        ),
      )
    ).value;
    const actor = { id: owner.id, realm_id: realmId, role: Role.OWNER, is_active: 1 };
    const settings = slapd.sourceSettings;
    const source = (
      await log.run(realmId, (ctx) =>
        createSource(ctx, actor, {
          name: 'ldap',
          connector: 'ldap',
          settings,
          scheduleSeconds: null,
          deactivateMissing: true,
        }),
      )
    ).value;
    const before = await log.head();
    const job = (
      await log.run(realmId, (ctx) =>
        enqueueJob(
          ctx,
          {
            kind: DIRECTORY_SYNC_JOB,
            payload: { sourceId: source.id },
            singletonKey: syncKey(source.id),
            maxAttempts: 200,
          },
          testOptions(),
        ),
      )
    ).value.job;

    const random = rng(backend === 'sqlite' ? 7 : 11);
    let kills = 0;
    // Every worker this test starts is killed before it ends, whatever happens: the one that
    // finishes the sync would otherwise keep its runner polling long after the test.
    const started: Worker[] = [];
    const spawnTracked = () => {
      const w = spawnSyncWorker(db);
      started.push(w);
      return w;
    };
    try {
      let next = spawnTracked();
      for (;;) {
        const worker = next;
        await worker.ready;
        worker.child.kill('SIGUSR2');
        // The spare starts while this one runs (claiming nothing until told), so a takeover waits
        // only for the lease; one worker at a time may claim, so the one killed is the one running.
        next = spawnTracked();
        if (kills >= KILLS) {
          await worker.after('done', 1);
          break;
        }
        const point = random();
        let outcome: 'seen' | 'done';
        if (point < 0.25) {
          // While reading the directory or planning: right after the claim, plus up to 40 ms.
          outcome = await worker.once('claimed');
          await new Promise((r) => setTimeout(r, Math.floor(random() * 40)));
        } else {
          outcome = await worker.after('page', 1 + Math.floor(random() * 3));
          // Sometimes a few ms later, to land inside the next page's transaction.
          if (point > 0.6) await new Promise((r) => setTimeout(r, Math.floor(random() * 15)));
        }
        if (outcome === 'done') break;
        worker.child.kill('SIGKILL');
        await worker.exited;
        kills++;
      }
      // `done` is said when the handler returns; the runner then records the end of the attempt.
      const readJob = () =>
        log.store.db.selectFrom('jobs').selectAll().where('id', '=', job.id).executeTakeFirstOrThrow();
      let row = await readJob();
      while (row.state === 'running') {
        await new Promise((r) => setTimeout(r, 20));
        row = await readJob();
      }
      expect(kills).toBe(KILLS);
      expect([row.state, row.error]).toEqual(['succeeded', null]);
      expect(row.attempt).toBeGreaterThan(KILLS);
      // Exactly once, whatever was interrupted.
      const kinds = await changesSince({ log } as never, before);
      expect([kinds.get('user.created'), kinds.get('stream.created')]).toEqual([
        dir.users.length,
        dir.groups.length,
      ]);
      const linked = await linkedUsers(log.store.db, source.id);
      expect(linked.size).toBe(dir.users.length);
      for (const u of dir.users)
        expect([linked.get(u.uid)?.full_name, linked.get(u.uid)?.is_active]).toEqual([u.cn, 1]);
      const members = await channelMembers(log.store.db, source.id);
      for (const g of dir.groups) expect(members.get(g.cn)).toEqual([...g.members].sort());
      const subs = await log.store.db
        .selectFrom('subscriptions')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      expect(Number(subs.n)).toBe(dir.groups.reduce((n, g) => n + g.members.length, 0));
      // 50 worker spawns and lease takeovers (2,400 users, 48 groups: pages enough for 50 kills even when an attempt gets far, as on a quiet machine: 400 users gave only 19).
    } finally {
      for (const w of started)
        if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
      await Promise.all(started.map((w) => w.exited));
    }
  }, 240_000);
});
