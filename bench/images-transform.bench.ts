import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { TransformOps } from '../packages/server/src/images/transformUrl.js';
import { canonicalPath } from '../packages/server/src/images/transformUrl.js';
import {
  closeConnections,
  get,
  photoVariant,
  serverCpuSeconds,
  serverMetric,
  sharpHttpArgs,
  sharpHttpCpuMs,
  sourcePhoto,
  startImageServer,
  startLineChild,
} from './lib/images.js';
import { startChild } from './lib/processes.js';
import type { BenchResult } from './lib/report.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * (b) A cold transform through Concord — one HTTP GET of a signed URL whose result store is empty:
 * signature, source lookup, single-flight lock, sharp, response (the result file is written after
 * it) — against two references on the same input with the same operations, each in its own process:
 * - bare sharp: the pipeline alone, timed around the call (issue 5's reference);
 * - bare sharp over HTTP: the same pipeline behind a bare Fastify route, fetched by the same client
 *   as Concord (the least an HTTP image server can do: what is left over it is Concord's own).
 * Two variants: an avatar-sized one (the fixed per-request cost weighs most) and a larger one. Each
 * round times the three, in an order that rotates; ratios are of the medians. Every measured Concord
 * request is checked to have been a transform (the server's transform counter), and all three to
 * produce the same bytes.
 *
 * The rounds are spread over BENCH_INSTANCES fresh sets of processes: one process keeps its own
 * bias for its life (two identical Concord servers alternating in one run differed by 0.35 ms at the
 * median, 1.5% of a transform), so a single set would carry one draw of it into the ratio. Each
 * reference is timed only once Concord's result file is written (the write follows the answer), so
 * that Concord's work never overlaps a reference's.
 *
 * Where the source comes from, in two cases:
 * - "recent": the same uploaded source every round. Concord reads it from the database in the first
 *   (warm-up) round and keeps it in memory (images/sources.ts), as when the sizes and formats of
 *   one avatar are asked for together; the references transform one buffer they hold.
 * - "db" (256 px only): a source Concord has never read, every round (one uploaded avatar per
 *   round, each the same photo slightly brighter: other bytes, the same size and work), so it is
 *   read from the database. The references hold each in memory, untransformed until its round.
 *
 * sharp's settings are the same in all processes: none sets any (concurrency, libvips' operation
 * cache: their defaults, printed below), and all inherit this process's environment.
 *
 * The CPU lines: each server's CPU over the measured rounds (all threads, Concord's writing of the
 * results included) less what it spends idle over the same time (timers and polls, measured for 2 s
 * once it is warm), per transform, against the bare process's CPU around each transform and the
 * bare HTTP server's over the same rounds.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 60);
const DB_ROUNDS = Number(process.env.BENCH_DB_ROUNDS ?? 24);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 6);
const TRANSFORMS = 'concord_image_transforms_total';
const VARIANTS: Omit<TransformOps, 'source'>[] = [
  { fit: 'fill', width: 256, height: 256, format: 'webp', quality: 80 },
  { fit: 'fit', width: 1024, height: 1024, format: 'webp', quality: 80 },
];
const label = (ops: Omit<TransformOps, 'source'>) =>
  `${ops.fit}-${ops.width}x${ops.height}-${ops.format}-q${ops.quality}`;
const CASES = [
  ...VARIANTS.map((ops) => ({ ops, name: `images-transform-${ops.width}`, rounds: ROUNDS, db: false })),
  { ops: VARIANTS[0]!, name: `images-transform-${VARIANTS[0]!.width}-db`, rounds: DB_ROUNDS, db: true },
];
/** Measured rounds of a case in instance `i` (the total split as evenly as it goes). */
const share = (rounds: number, i: number) =>
  Math.floor(rounds / INSTANCES) + (i < rounds % INSTANCES ? 1 : 0);

interface Samples {
  concord: number[];
  bare: number[];
  http: number[];
  rows: Record<string, string | number>[];
  bytes: number;
  concordCpuMs: number;
  idleCpuMs: number;
  bareCpuMs: number;
  httpCpuMs: number;
}
const samples = new Map(
  CASES.map((c) => [
    c.name,
    {
      concord: [],
      bare: [],
      http: [],
      rows: [],
      bytes: 0,
      concordCpuMs: 0,
      idleCpuMs: 0,
      bareCpuMs: 0,
      httpCpuMs: 0,
    } as Samples,
  ]),
);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * The CPU ms a process used since a reading of `from`, less what one reading costs (measured by a
 * second one): the first reading's own work falls after its value was taken.
 */
async function cpuSince(read: () => Promise<number>, from: number): Promise<number> {
  const now = await read();
  return now - from - ((await read()) - now);
}

const source = await sourcePhoto();
// The "db" sources: the same for every instance (each uploads the ones of its rounds).
const dbPhotos = await Promise.all(
  Array.from({ length: WARMUP + Math.ceil(DB_ROUNDS / INSTANCES) }, (_, i) => photoVariant(source, i + 1)),
);
let settings = '';
for (let instance = 0; instance < INSTANCES; instance++) {
  const server = await startImageServer(source);
  try {
    writeFileSync(join(server.dataDir, 'source.jpg'), source);
    const others: { sha256: string; file: string }[] = [];
    for (const [i, photo] of dbPhotos.entries()) {
      const file = `source-${i + 1}.jpg`;
      writeFileSync(join(server.dataDir, file), photo);
      others.push({ sha256: await server.addSource(photo), file });
    }
    const bare = await startLineChild('sharp', [join(server.dataDir, 'source.jpg')]);
    const overHttp = await startChild(...sharpHttpArgs(server.dataDir));
    const httpUrl = overHttp.match[1]!;
    try {
      settings ||= await bare.ask('settings');
      const concordCpu = async () => (await serverCpuSeconds(server.url)) * 1000;
      const httpCpu = () => sharpHttpCpuMs(httpUrl);
      // Both servers warm (cold transforms, as in the rounds) before their CPU while idle (timers,
      // polls) is measured, to be subtracted from their CPU per transform below: right after start-up
      // and the uploads, garbage collection and compilation still run, and counted as idle they
      // would lower Concord's figure.
      for (let i = 0; i < WARMUP; i++) {
        await server.clearResults();
        await get(`${server.url}${server.path(VARIANTS[0]!)}`);
        await get(`${httpUrl}/${canonicalPath({ ...VARIANTS[0]!, source: server.sha256 })}`);
      }
      await server.settle();
      const [idleConcordFrom, idleHttpFrom] = [await concordCpu(), await httpCpu()];
      const idleFrom = performance.now();
      await new Promise((r) => setTimeout(r, 2000));
      const idleMs = performance.now() - idleFrom;
      const idlePerMs = {
        concord: (await cpuSince(concordCpu, idleConcordFrom)) / idleMs,
        http: (await cpuSince(httpCpu, idleHttpFrom)) / idleMs,
      };
      for (const { ops, name, rounds, db } of CASES) {
        const s = samples.get(name)!;
        const measured = share(rounds, instance);
        let serverCpuBefore = 0;
        let httpCpuBefore = 0;
        let measuredFrom = 0;
        const transformsBefore = await serverMetric(server.url, TRANSFORMS);
        for (let r = -WARMUP; r < measured; r++) {
          // CPU time depends less than wall time on what else the machine runs (it still moved by
          // ±5% between runs here): each server's over the measured rounds, against the bare
          // pipeline's around each transform.
          if (r === 0) {
            serverCpuBefore = await concordCpu();
            httpCpuBefore = await httpCpu();
            measuredFrom = performance.now();
          }
          const other = db ? others[r + WARMUP]! : undefined;
          const timed = {
            concord: async () => {
              await server.clearResults();
              const start = performance.now();
              const res = await get(`${server.url}${server.path(ops, other?.sha256)}`);
              const ms = performance.now() - start;
              if (res.status !== 200)
                throw new Error(`transform failed: ${res.status} ${res.body.toString()}`);
              await server.settle(); // its write (after the answer) is done before anything else is timed
              return { ms, sha256: sha(res.body), bytes: res.body.length };
            },
            bare: async () => {
              const y = JSON.parse(
                await bare.ask(
                  JSON.stringify({
                    ...ops,
                    source: server.sha256,
                    file: other && join(server.dataDir, other.file),
                  }),
                ),
              ) as { ms: number; cpuMs: number; sha256: string };
              if (r >= 0) s.bareCpuMs += y.cpuMs;
              return y;
            },
            http: async () => {
              const start = performance.now();
              const res = await get(
                `${httpUrl}/${canonicalPath({ ...ops, source: other?.sha256 ?? server.sha256 })}`,
              );
              const ms = performance.now() - start;
              if (res.status !== 200) throw new Error(`bare sharp over HTTP failed: ${res.status}`);
              return { ms, sha256: sha(res.body) };
            },
          };
          // The order rotates, so that none of the three is always the one after another's: on the
          // rounds this case measured so far, across instances, so that each order runs as often.
          const turn = s.concord.length;
          const order = (['concord', 'bare', 'http'] as const).map((_, k, all) => all[(k + turn) % 3]!);
          const got: Partial<Record<(typeof order)[number], { ms: number; sha256: string; bytes?: number }>> =
            {};
          for (const side of order) got[side] = await timed[side]();
          if (new Set([got.concord!.sha256, got.bare!.sha256, got.http!.sha256]).size !== 1)
            throw new Error('Concord and the bare pipelines produced different bytes');
          if (r < 0) continue;
          s.bytes = got.concord!.bytes!;
          s.concord.push(got.concord!.ms);
          s.bare.push(got.bare!.ms);
          s.http.push(got.http!.ms);
          s.rows.push({
            instance: instance + 1,
            round: r + 1,
            order: order.join(' '),
            'concord ms': got.concord!.ms.toFixed(1),
            'bare sharp ms': got.bare!.ms.toFixed(1),
            'bare sharp over HTTP ms': got.http!.ms.toFixed(1),
            'ratio to bare': (got.concord!.ms / got.bare!.ms).toFixed(3),
          });
        }
        // Every request measured was a cold one: answered by a transform, not from a result.
        const transforms = (await serverMetric(server.url, TRANSFORMS)) - transformsBefore;
        if (transforms !== WARMUP + measured)
          throw new Error(`${WARMUP + measured} cold requests but ${transforms} transforms`);
        // Each server's CPU over the rounds, less one reading's and less what it spends idle over the
        // same time.
        const elapsed = performance.now() - measuredFrom;
        s.concordCpuMs += (await cpuSince(concordCpu, serverCpuBefore)) - elapsed * idlePerMs.concord;
        s.idleCpuMs += elapsed * idlePerMs.concord;
        s.httpCpuMs += (await cpuSince(httpCpu, httpCpuBefore)) - elapsed * idlePerMs.http;
      }
    } finally {
      await bare.stop();
      await overHttp.stop();
    }
  } finally {
    closeConnections();
    await server.stop();
  }
}

console.log(
  `sharp in the bare processes: ${settings}; the Concord process sets none of them either (the same defaults)`,
);
const results: BenchResult[] = [];
for (const { ops, name, rounds, db } of CASES) {
  const s = samples.get(name)!;
  printTable(
    `Cold transform of a ${source.length}-byte 1600×1200 JPEG: ${label(ops)} (${s.bytes} bytes out), ` +
      `source ${db ? 'read from the database' : 'recent (in memory)'}; Concord and bare sharp over HTTP ` +
      `fetched by a node:http keep-alive client in the benchmark process, bare sharp timed in its own ` +
      `process; ${INSTANCES} sets of processes; ${cpus().length} cores shared, load average ` +
      `${loadavg()[0]!.toFixed(2)}`,
    s.rows,
  );
  const [sc, sb, sh] = [summarize(s.concord), summarize(s.bare), summarize(s.http)];
  console.log(
    `${label(ops)}: medians Concord ${sc.median.toFixed(2)} ms, bare sharp ${sb.median.toFixed(2)} ms, ` +
      `bare sharp over HTTP ${sh.median.toFixed(2)} ms (the HTTP exchange alone: ` +
      `${(sh.median - sb.median).toFixed(2)} ms; bare sharp over HTTP ÷ bare sharp ${(sh.median / sb.median).toFixed(3)}); CPU per cold transform ${(s.concordCpuMs / rounds).toFixed(1)} ms ` +
      `(Concord process, less ${(s.idleCpuMs / rounds).toFixed(2)} ms of its idle CPU) vs ` +
      `${(s.bareCpuMs / rounds).toFixed(1)} ms (bare sharp process) and ` +
      `${(s.httpCpuMs / rounds).toFixed(1)} ms (bare sharp over HTTP, server process)`,
  );
  const bareRef = `bare-sharp-same-ops (${label(ops)})`;
  const common = { metric: 'ms_per_cold_transform', higher_is_better: false, goal: '<=1.10', rounds };
  results.push(
    {
      name,
      ...common,
      concord: sc.median,
      reference: bareRef,
      reference_value: sb.median,
      ratio: sc.median / sb.median,
      spread: Math.max(sc.spread, sb.spread),
    },
    {
      name: `${name}-http`,
      ...common,
      concord: sc.median,
      reference: `bare-fastify-route-bare-sharp (${label(ops)})`,
      reference_value: sh.median,
      ratio: sc.median / sh.median,
      spread: Math.max(sc.spread, sh.spread),
    },
    {
      name: `${name}-cpu`,
      ...common,
      metric: 'cpu_ms_per_cold_transform',
      concord: s.concordCpuMs / rounds,
      reference: bareRef,
      reference_value: s.bareCpuMs / rounds,
      ratio: s.concordCpuMs / s.bareCpuMs,
      spread: 0, // one total over all rounds on each side
    },
    {
      name: `${name}-http-cpu`,
      ...common,
      metric: 'cpu_ms_per_cold_transform',
      concord: s.concordCpuMs / rounds,
      reference: `bare-fastify-route-bare-sharp (${label(ops)})`,
      reference_value: s.httpCpuMs / rounds,
      ratio: s.concordCpuMs / s.httpCpuMs,
      spread: 0,
    },
  );
}
await report('images-transform', results);
