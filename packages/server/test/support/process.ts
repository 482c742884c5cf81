import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { zulipContract } from './openapi.js';

const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const run = promisify(execFile);

/** A Concord server in its own process, as an operator starts it. */
export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, and wait for the exit code. */
  stop(): Promise<number | null>;
  /** Everything the process printed so far (for failure messages). */
  output(): string;
}

/** The environment of a test server process over `db` (a dir for SQLite, or a PostgreSQL URL). */
export function serverEnv(
  db: { databaseUrl?: string; dataDir: string },
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CONCORD_DATA_DIR: db.dataDir,
    CONCORD_LOG_LEVEL: 'warn',
    CONCORD_PASSWORD_HASH_COST: '10',
    CONCORD_SECRET: 'process-test-secret-process-test-secret-01',
    CONCORD_CHANGELOG_POLL_MS: '200',
    ...(db.databaseUrl ? { DATABASE_URL: db.databaseUrl } : {}),
    ...extra,
  };
}

/**
 * Starts `concord serve` on a free port and resolves once it is ready (it printed "running at"),
 * or with `until: 'listening'` as soon as its port is open (it is still warming up).
 */
export async function spawnServer(
  env: NodeJS.ProcessEnv,
  args: string[] = [],
  until: 'running' | 'listening' = 'running',
): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', main, 'serve', '--port', '0', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${out}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = (
        until === 'running' ? /Concord is running at (http:\/\/\S+)/ : /is listening at (http:\/\/[^\s;]+)/
      ).exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${out}`));
    });
  });
  const exited = once(child, 'exit');
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  return {
    url,
    child,
    output: () => out,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** Runs `concord create-user` and returns its JSON output (user_id, api_key, …). */
export async function createUserCli(
  env: NodeJS.ProcessEnv,
  user: { email: string; fullName: string; role: string; password?: string },
): Promise<{ user_id: number; api_key: string; email: string }> {
  const args = [
    '--import',
    'tsx',
    main,
    'create-user',
    '--role',
    user.role,
    '--email',
    user.email,
    '--full-name',
    user.fullName,
  ];
  if (user.password) args.push('--password', user.password);
  const { stdout } = await run(process.execPath, args, { env });
  return JSON.parse(stdout.trim());
}

/** A tiny Zulip API caller with Basic auth, for tests that drive server processes. */
export function apiAs(baseUrl: string, email: string, apiKey: string) {
  const auth = `Basic ${Buffer.from(`${email}:${apiKey}`).toString('base64')}`;
  return async (method: string, path: string, params: Record<string, unknown> = {}) => {
    const body = new URLSearchParams(
      Object.entries(params).map(([k, v]): [string, string] => [
        k,
        typeof v === 'string' ? v : JSON.stringify(v),
      ]),
    );
    const query = method === 'GET' ? `?${body}` : '';
    const res = await fetch(`${baseUrl}/api/v1${path}${query}`, {
      method,
      headers: { authorization: auth },
      body: method === 'GET' ? undefined : body,
    });
    const json: unknown = await res.json();
    zulipContract().validateResponse(method, path, res.status, json);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- checked by the caller's assertions
    return { status: res.status, body: json as any };
  };
}
