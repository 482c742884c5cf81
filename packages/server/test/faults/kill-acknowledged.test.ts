import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { openStore } from '../../src/store/open.js';
import type { Backend } from '../support/backends.js';
import { backends, freshDatabase } from '../support/backends.js';

const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const run = promisify(execFile);
let child: ChildProcess | null = null;

afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  child = null;
});

function env(db: { databaseUrl?: string; dataDir: string }): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CONCORD_DATA_DIR: db.dataDir,
    CONCORD_LOG_LEVEL: 'warn',
    CONCORD_PASSWORD_HASH_COST: '10',
    CONCORD_SECRET: 'kill-test-secret-kill-test-secret-012345',
    ...(db.databaseUrl ? { DATABASE_URL: db.databaseUrl } : {}),
  };
}

async function serve(e: NodeJS.ProcessEnv): Promise<string> {
  child = spawn(process.execPath, ['--import', 'tsx', main, 'serve', '--port', '0'], {
    env: e,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const proc = child;
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /Concord is running at (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    proc.on('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${out}`)));
  });
}

/**
 * kill -9 at random instants while clients write: every write the server acknowledged (200) is
 * there after a restart, and the change log has no gap and no entry for an unacknowledged write
 * beyond those that committed just before the kill.
 */
describe.each(backends())('acknowledged writes survive kill -9 on %s', (backend: Backend) => {
  it('loses no acknowledged write across 6 kills', async () => {
    const db = await freshDatabase(backend);
    const e = env(db);
    try {
      const { stdout } = await run(
        process.execPath,
        [
          '--import',
          'tsx',
          main,
          'create-user',
          '--role',
          'owner',
          '--email',
          'o@example.com',
          '--full-name',
          'O',
          '--password',
          'pw',
        ],
        { env: e },
      );
      const key = JSON.parse(stdout.trim()).api_key as string;
      const auth = `Basic ${Buffer.from(`o@example.com:${key}`).toString('base64')}`;
      const acknowledged: string[] = [];
      let n = 0;

      for (let round = 0; round < 6; round++) {
        const url = await serve(e);
        let stop = false;
        const writer = async () => {
          while (!stop) {
            const name = `ch-${round}-${n++}`;
            try {
              const res = await fetch(`${url}/api/v1/users/me/subscriptions`, {
                method: 'POST',
                headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
                body: new URLSearchParams({ subscriptions: JSON.stringify([{ name }]) }),
              });
              if (res.status === 200) acknowledged.push(name);
              else expect.fail(`write answered ${res.status}: ${await res.text()}`);
            } catch {
              return; // connection dropped by the kill: not acknowledged
            }
          }
        };
        const writers = [writer(), writer(), writer(), writer()];
        // Kill after a random amount of progress rather than time, so a loaded machine still
        // kills mid-stream; plus a random sub-request delay so the kill lands at any instant.
        const target = acknowledged.length + 5 + Math.floor(Math.random() * 40);
        const deadline = Date.now() + 30_000;
        while (acknowledged.length < target && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 2));
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        const exited = once(child!, 'exit');
        child!.kill('SIGKILL');
        stop = true;
        await Promise.all(writers);
        await exited;
      }
      expect(acknowledged.length).toBeGreaterThan(20);

      const config = loadConfig([], e);
      const store = await openStore(config);
      try {
        const names = new Set(
          (await store.db.selectFrom('streams').select('name').execute()).map((r) => r.name),
        );
        const lost = acknowledged.filter((a) => !names.has(a));
        console.log(
          `${backend}: ${acknowledged.length} acknowledged writes over 6 kills; ${names.size} channels committed`,
        );
        expect(lost).toEqual([]);
        const seqs = (await store.db.selectFrom('changes').select('seq').orderBy('seq').execute()).map((r) =>
          Number(r.seq),
        );
        const head = (await store.db.selectFrom('changelog_head').select('seq').executeTakeFirstOrThrow())
          .seq;
        expect(seqs).toEqual(Array.from({ length: head }, (_, i) => i + 1));
        // Two changes per channel creation (stream.created + subscription.added), plus the owner and realm.
        expect(head).toBe(2 + 2 * names.size);
      } finally {
        await store.close();
      }
    } finally {
      await db.cleanup();
    }
  }, 120_000);
});
