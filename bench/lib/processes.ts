import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** A child process that printed a line matching `ready`; `stop` kills it and waits. */
export interface Child {
  child: ChildProcess;
  match: RegExpExecArray;
  stop(): Promise<void>;
}

/** Runs `node --import tsx <script> ...args` and resolves when stdout matches `ready`. */
export async function startChild(
  script: string,
  args: string[],
  ready: RegExp,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start:\n${out}`)), 60_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code}):\n${out}`));
    });
  });
  const exited = once(child, 'exit');
  return {
    child,
    match,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A Concord server process on a fresh SQLite data directory. */
export async function startConcord(extraEnv: Record<string, string> = {}): Promise<{
  url: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}> {
  const dataDir = mkdtempSync(join(tmpdir(), 'concord-bench-'));
  const env = {
    ...process.env,
    CONCORD_DATA_DIR: dataDir,
    CONCORD_LOG_LEVEL: 'warn',
    CONCORD_PASSWORD_HASH_COST: '10',
    ...extraEnv,
  };
  const main = join(root, 'packages/server/src/main.ts');
  const c = await startChild(main, ['serve', '--port', '0'], /Concord is running at (http:\/\/\S+)/, env);
  return {
    url: c.match[1]!,
    dataDir,
    env,
    async stop() {
      await c.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs autocannon in its own process (load generation must not share the server's process). */
export async function loadTest(opts: {
  url: string;
  headers?: Record<string, string>;
  seconds: number;
  connections: number;
}): Promise<{
  requestsPerSecond: number;
  latencyP50: number;
  latencyP99: number;
  errors: number;
  non2xx: number;
}> {
  const script = fileURLToPath(new URL('./load.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(opts)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`load generator exited ${code}`);
  return JSON.parse(out.trim().split('\n').at(-1)!);
}
