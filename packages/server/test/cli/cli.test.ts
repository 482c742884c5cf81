import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { freshDir } from '../support/backends.js';

const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const run = promisify(execFile);
const children: ChildProcess[] = [];
const dirs: { remove(): void }[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
  for (const d of dirs.splice(0)) d.remove();
});

/** Starts `concord serve` as a user would and resolves with the URL it prints. */
async function serve(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', main, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not print its URL; output:\n${out}`)),
      30_000,
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /Concord is running at (http:\/\/\S+)[^]*Create its owner with/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`server exited with ${code}; output:\n${out}`)));
  });
  expect(out).toMatch(/no users yet\. Create its owner with:/);
  return { child, url };
}

describe('the concord command', () => {
  it('starts on an empty data dir, takes a create-user from another process, and stops cleanly', async () => {
    const tmp = freshDir();
    dirs.push(tmp);
    const { child, url } = await serve(tmp.dir);
    const settings = await fetch(`${url}/api/v1/server_settings`).then((r) => r.json());
    expect(settings).toMatchObject({ result: 'success', zulip_feature_level: expect.any(Number) });

    const { stdout } = await run(process.execPath, [
      '--import',
      'tsx',
      main,
      'create-user',
      '--data-dir',
      tmp.dir,
      '--role',
      'owner',
      '--email',
      'boss@example.com',
      '--full-name',
      'The Boss',
      '--password',
      'correct horse',
    ]);
    const created = JSON.parse(stdout.trim());
    expect(created).toMatchObject({
      user_id: 1,
      role: 100,
      api_key: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
    });

    const body = new URLSearchParams({ username: 'boss@example.com', password: 'correct horse' });
    const key = await fetch(`${url}/api/v1/fetch_api_key`, { method: 'POST', body }).then((r) => r.json());
    expect(key).toMatchObject({ result: 'success', api_key: created.api_key, user_id: 1 });

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });

  it('refuses bad configuration before starting, naming each problem', async () => {
    const err = await run(process.execPath, [
      '--import',
      'tsx',
      main,
      'serve',
      '--port',
      'abc',
      '--database-url',
      'mysql://x',
    ]).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 1 });
    expect((err as { stderr: string }).stderr).toMatch(/CONCORD_PORT \(--port\)/);
    expect((err as { stderr: string }).stderr).toMatch(/DATABASE_URL \(--database-url\): must be a postgres/);
  });
});
