import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOwner } from './lib/owner.js';
import { startConcord } from './lib/processes.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * Fan-out: N WebSocket clients on one Concord node, one change that all of them may see (a user
 * renamed → realm_user update in every queue): time until the last client has it, and deliveries
 * per second; against Socket.IO broadcasting the same payload to the same number of clients.
 * Clients run in their own process; the bench process only triggers and collects.
 */
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const root = fileURLToPath(new URL('..', import.meta.url));

function child(
  script: string,
  args: string[],
  ready: RegExp,
): Promise<{ proc: ChildProcess; match: RegExpExecArray; lines: (cb: (l: string) => void) => void }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(root, script), ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let buffer = '';
  const listeners: ((l: string) => void)[] = [];
  return new Promise((resolve, reject) => {
    let resolved = false;
    proc.stdout!.on('data', (c: Buffer) => {
      buffer += c.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const m = ready.exec(line);
        if (!resolved && m) {
          resolved = true;
          resolve({ proc, match: m, lines: (cb) => listeners.push(cb) });
        } else for (const l of listeners) l(line);
      }
    });
    proc.on('exit', (code) => !resolved && reject(new Error(`${script} exited ${code}`)));
  });
}

const nextLatencies = (c: Awaited<ReturnType<typeof child>>) =>
  new Promise<number[]>((resolve) => {
    let done = false;
    c.lines((l) => {
      if (done || !l.startsWith('{')) return;
      done = true;
      resolve((JSON.parse(l) as { latencies: number[] }).latencies);
    });
  });

const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

const concord = await startConcord({ CONCORD_EVENT_LONGPOLL_SECONDS: '600' });
const procs: ChildProcess[] = [];
try {
  const owner = await createOwner(concord.env, 'owner@example.com', 'Fan Out');
  const auth = owner.authorization;
  const call = async (method: string, path: string, params: Record<string, string> = {}) => {
    const res = await fetch(`${concord.url}/api/v1${path}`, {
      method,
      headers: { authorization: auth },
      body: new URLSearchParams(params),
    });
    return (await res.json()) as Record<string, unknown>;
  };
  const queues: string[] = [];
  for (let i = 0; i < CLIENTS; i++)
    queues.push((await call('POST', '/register', { event_types: '["realm_user"]' })).queue_id as string);
  // Too many ids for a command line: the client process reads them from a file.
  const queuesFile = join(concord.dataDir, 'queues.json');
  writeFileSync(queuesFile, JSON.stringify({ base: concord.url.replace('http', 'ws'), queues }));
  const sample = {
    type: 'realm_user',
    op: 'update',
    person: { user_id: owner.user_id, full_name: 'Fan Out 0' },
    id: 0,
  };

  const cc = await child(
    'bench/lib/fanout-clients.ts',
    ['concord', queuesFile, String(CLIENTS), auth],
    /^ready$/,
  );
  procs.push(cc.proc);
  const sio = await child('bench/lib/socketio-server.ts', [], /socket\.io at (http:\/\/\S+)/);
  procs.push(sio.proc);
  const sc = await child(
    'bench/lib/fanout-clients.ts',
    ['socket.io', sio.match[1]!, String(CLIENTS)],
    /^ready$/,
  );
  procs.push(sc.proc);

  const rows: Record<string, string | number>[] = [];
  const c = { last: [] as number[], p50: [] as number[], p99: [] as number[], rate: [] as number[] };
  const s = { last: [] as number[], p50: [] as number[], p99: [] as number[], rate: [] as number[] };
  for (let r = 0; r <= ROUNDS; r++) {
    const t0 = Date.now();
    const gotC = nextLatencies(cc);
    cc.proc.stdin!.write(`go ${t0}\n`);
    await call('PATCH', `/users/${owner.user_id}`, { full_name: `Fan Out ${r + 1}` });
    const patchMs = Date.now() - t0;
    const lc = await gotC;
    const t1 = Date.now();
    const gotS = nextLatencies(sc);
    sc.proc.stdin!.write(`go ${t1}\n`);
    sio.proc.stdin!.write(
      `emit ${JSON.stringify({ ...sample, person: { ...sample.person, full_name: `Fan Out ${r + 1}` } })}\n`,
    );
    const ls = await gotS;
    if (r === 0) continue; // warm-up round
    for (const [acc, l] of [
      [c, lc],
      [s, ls],
    ] as const) {
      const last = Math.max(...l);
      acc.last.push(last);
      acc.p50.push(percentile(l, 50));
      acc.p99.push(percentile(l, 99));
      acc.rate.push(l.length / (last / 1000));
    }
    rows.push({
      round: r,
      'PATCH ms': patchMs,
      'concord p50 ms': percentile(lc, 50),
      'concord p99 ms': percentile(lc, 99),
      'concord last ms': Math.max(...lc),
      'socket.io p50 ms': percentile(ls, 50),
      'socket.io p99 ms': percentile(ls, 99),
      'socket.io last ms': Math.max(...ls),
    });
  }
  printTable(
    `fan-out to ${CLIENTS} WebSocket clients; ${cpus().length} cores: server, client process and peer share them. Concord's time includes the PATCH that makes the change (commit, doorbell, derivation per queue).`,
    rows,
  );
  const m = (xs: number[]) => summarize(xs);
  await report('fanout', [
    {
      name: `fanout-ws-${CLIENTS}`,
      metric: 'last_client_ms_p50',
      concord: m(c.last).median,
      reference: 'socket.io',
      reference_value: m(s.last).median,
      ratio: m(c.last).median / m(s.last).median,
      higher_is_better: false,
      goal: '<=1.0',
      rounds: ROUNDS,
      spread: Math.max(m(c.last).spread, m(s.last).spread),
    },
    {
      name: `fanout-ws-${CLIENTS}`,
      metric: 'client_p99_ms',
      concord: m(c.p99).median,
      reference: 'socket.io',
      reference_value: m(s.p99).median,
      ratio: m(c.p99).median / m(s.p99).median,
      higher_is_better: false,
      goal: '<=1.0',
      rounds: ROUNDS,
      spread: Math.max(m(c.p99).spread, m(s.p99).spread),
    },
    {
      name: `fanout-ws-${CLIENTS}`,
      metric: 'deliveries_per_s',
      concord: m(c.rate).median,
      reference: 'socket.io',
      reference_value: m(s.rate).median,
      ratio: m(c.rate).median / m(s.rate).median,
      higher_is_better: true,
      goal: '>=1.0',
      rounds: ROUNDS,
      spread: Math.max(m(c.rate).spread, m(s.rate).spread),
    },
  ]);
} finally {
  for (const p of procs) p.kill('SIGKILL');
  await concord.stop();
}
