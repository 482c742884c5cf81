import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import type { RunnerOptions } from '../../src/jobs/runner/options.js';
import type { JobDb, JobStoreOptions, StopAt } from './fixture.js';

const source = fileURLToPath(new URL('./worker-child.ts', import.meta.url));
// Inside the server package's node_modules, so that the bundle's imports resolve like the source's.
const bundle = fileURLToPath(
  new URL('../../node_modules/.cache/concord-jobs/worker-child.mjs', import.meta.url),
);
let built = false;

/**
 * Bundles worker-child.ts once per test process: a bundled child starts in about a third of the
 * time tsx needs, which is what lets a kill test spawn a hundred workers in seconds.
 */
function buildWorker(): string {
  if (!built) {
    buildSync({
      entryPoints: [source],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: bundle,
      logLevel: 'silent',
    });
    built = true;
  }
  return bundle;
}

/** A worker process and what it has said. */
export interface WorkerChild {
  child: ChildProcess;
  ready: Promise<void>;
  lines: string[];
  /** Attempts it claimed and has not finished: job id → attempt. */
  inflight: Map<number, number>;
  /** Calls `fn` for every line from now on. */
  onLine(fn: (line: string) => void): void;
  exited: Promise<unknown>;
  /** SIGKILL; returns the attempts it was running. */
  kill(): Map<number, number>;
  /** SIGTERM (graceful: releases its leases) and wait. */
  stop(): Promise<void>;
}

/** Starts a worker over `db` (`stop`: where it SIGSTOPs itself; `store`: how it opens the database). */
export function spawnWorker(
  db: Pick<JobDb, 'where'>,
  options: Partial<RunnerOptions> = {},
  mode: 'normal' | 'stubborn' = 'normal',
  extra: { stop?: StopAt; store?: JobStoreOptions } = {},
): WorkerChild {
  const args = JSON.stringify({ where: db.where, options, mode, ...extra });
  const child = spawn(process.execPath, [buildWorker(), args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  const inflight = new Map<number, number>();
  let err = '';
  let buffer = '';
  let onReady!: () => void;
  let onFail!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onFail = reject;
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      lines.push(line);
      const [word, job, attempt] = line.split(' ');
      if (word === 'ready') onReady();
      if (word === 'claimed') inflight.set(Number(job), Number(attempt));
      if (word === 'done') inflight.delete(Number(job));
      for (const l of listeners) l(line);
    }
  });
  // Awaited by those who need it; a worker stopped before it was ready is not an error.
  ready.catch(() => {});
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = once(child, 'exit');
  void exited.then(([code, signal]) =>
    onFail(new Error(`worker exited (${code}, ${signal}) before ready:\n${err}`)),
  );
  return {
    child,
    ready,
    lines,
    inflight,
    onLine: (fn) => void listeners.push(fn),
    exited,
    kill() {
      const running = new Map(inflight);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return running;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // A stopped (SIGSTOP) child cannot handle SIGTERM.
        child.kill('SIGCONT');
        child.kill('SIGTERM');
      }
      await exited;
    },
  };
}
