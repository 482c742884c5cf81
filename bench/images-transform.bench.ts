import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { TransformOps } from '../packages/server/src/images/transformUrl.js';
import {
  closeConnections,
  get,
  photoVariant,
  serverCpuSeconds,
  serverMetric,
  sourcePhoto,
  startImageServer,
  startLineChild,
} from './lib/images.js';
import type { BenchResult } from './lib/report.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * (b) A cold transform through Concord — one HTTP GET of a signed URL whose result store is empty:
 * signature, source lookup, single-flight lock, sharp, response (the result file is written after
 * it) — against the bare sharp pipeline on the same input with the same operations, in its own
 * process. Two variants: an avatar-sized one (the fixed per-request cost weighs most) and a larger
 * one. Rounds alternate Concord and bare sharp; the ratio is of the medians. Every measured request
 * is checked to have been a transform (the server's transform counter) with the same bytes.
 *
 * Where the source comes from, in two cases:
 * - "recent": the same uploaded source every round. Concord reads it from the database in the first
 *   (warm-up) round and keeps it in memory (images/sources.ts), as when the sizes and formats of
 *   one avatar are asked for together; bare sharp transforms one buffer it holds.
 * - "db" (256 px only): a source Concord has never read, every round (one uploaded avatar per
 *   round, each the same photo slightly brighter: other bytes, the same size and work), so it is
 *   read from the database.
 *
 * sharp's settings are the same on both sides: neither process sets any (concurrency, libvips'
 * operation cache: their defaults, printed below), and both inherit this process's environment.
 *
 * The CPU lines: the server's CPU over the measured rounds (all threads, writing the results
 * included) less what it spends idle over the same time (timers and polls, measured for 2 s before
 * the rounds), per transform, against the bare process's CPU around each transform.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const DB_ROUNDS = Number(process.env.BENCH_DB_ROUNDS ?? 15);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const TRANSFORMS = 'concord_image_transforms_total';
const VARIANTS: Omit<TransformOps, 'source'>[] = [
  { fit: 'fill', width: 256, height: 256, format: 'webp', quality: 80 },
  { fit: 'fit', width: 1024, height: 1024, format: 'webp', quality: 80 },
];
const label = (ops: Omit<TransformOps, 'source'>) =>
  `${ops.fit}-${ops.width}x${ops.height}-${ops.format}-q${ops.quality}`;

const source = await sourcePhoto();
const server = await startImageServer(source);
try {
  const sourceFile = join(server.dataDir, 'source.jpg');
  writeFileSync(sourceFile, source);
  // The "db" case: sources uploaded now, read by Concord for the first time in their round.
  const others: { sha256: string; file: string }[] = [];
  for (let i = 1; i <= WARMUP + DB_ROUNDS; i++) {
    const photo = await photoVariant(source, i);
    const file = join(server.dataDir, `source-${i}.jpg`);
    writeFileSync(file, photo);
    others.push({ sha256: await server.addSource(photo), file });
  }
  const bare = await startLineChild('sharp', [sourceFile]);
  try {
    console.log(
      `sharp in the bare process: ${await bare.ask('settings')}; the Concord process sets none of ` +
        `them either (the same defaults)`,
    );
    // The server's CPU while idle (timers, polls), subtracted from its CPU per transform below.
    const idleStart = await serverCpuSeconds(server.url);
    const idleFrom = performance.now();
    await new Promise((r) => setTimeout(r, 2000));
    const idleCpuPerMs = ((await serverCpuSeconds(server.url)) - idleStart) / (performance.now() - idleFrom);
    const results: BenchResult[] = [];
    const cases = [
      ...VARIANTS.map((ops) => ({ ops, name: `images-transform-${ops.width}`, rounds: ROUNDS, db: false })),
      { ops: VARIANTS[0]!, name: `images-transform-${VARIANTS[0]!.width}-db`, rounds: DB_ROUNDS, db: true },
    ];
    for (const { ops, name, rounds, db } of cases) {
      const c: number[] = [];
      const b: number[] = [];
      const rows: Record<string, string | number>[] = [];
      let bytes = 0;
      let bareCpuMs = 0;
      let serverCpuBefore = 0;
      let measuredFrom = 0;
      const transformsBefore = await serverMetric(server.url, TRANSFORMS);
      for (let r = -WARMUP; r < rounds; r++) {
        // CPU time, unlike wall time, hardly depends on what else the machine runs: the server's
        // over the measured rounds (from its /metrics, one scrape before and after) against the
        // bare pipeline's.
        if (r === 0) {
          serverCpuBefore = await serverCpuSeconds(server.url);
          measuredFrom = performance.now();
        }
        const other = db ? others[r + WARMUP]! : undefined;
        const url = `${server.url}${server.path(ops, other?.sha256)}`;
        await server.clearResults();
        const start = performance.now();
        const res = await get(url);
        const ms = performance.now() - start;
        if (res.status !== 200) throw new Error(`transform failed: ${res.status} ${res.body.toString()}`);
        const y = JSON.parse(
          await bare.ask(JSON.stringify({ ...ops, source: server.sha256, file: other?.file })),
        ) as { ms: number; cpuMs: number; sha256: string };
        if (createHash('sha256').update(res.body).digest('hex') !== y.sha256)
          throw new Error('Concord and the bare pipeline produced different bytes');
        bytes = res.body.length;
        if (r < 0) continue;
        bareCpuMs += y.cpuMs;
        c.push(ms);
        b.push(y.ms);
        rows.push({
          round: r + 1,
          'concord ms': ms.toFixed(1),
          'bare sharp ms': y.ms.toFixed(1),
          'overhead ms': (ms - y.ms).toFixed(1),
          ratio: (ms / y.ms).toFixed(3),
        });
      }
      printTable(
        `Cold transform of a ${source.length}-byte 1600×1200 JPEG: ${label(ops)} (${bytes} bytes out), ` +
          `source ${db ? 'read from the database' : 'recent (in memory)'}; Concord over HTTP ` +
          `(node:http keep-alive client in the benchmark process) against bare sharp in its own ` +
          `process; ${cpus().length} cores shared, load average ${loadavg()[0]!.toFixed(2)}`,
        rows,
      );
      await server.settle(); // the writes after the responses are part of Concord's cost
      // Every request measured was a cold one: answered by a transform, not from a result.
      const transforms = (await serverMetric(server.url, TRANSFORMS)) - transformsBefore;
      if (transforms !== WARMUP + rounds)
        throw new Error(`${WARMUP + rounds} cold requests but ${transforms} transforms`);
      // A scrape's own cost, measured by a second one, is subtracted once; so is the CPU the server
      // spends idle over the same time.
      const serverCpuAfter = await serverCpuSeconds(server.url);
      const idleMs = (performance.now() - measuredFrom) * idleCpuPerMs * 1000;
      const scrape = (await serverCpuSeconds(server.url)) - serverCpuAfter;
      const concordCpuMs = ((serverCpuAfter - serverCpuBefore - scrape) * 1000 - idleMs) / rounds;
      const sc = summarize(c);
      const sb = summarize(b);
      console.log(
        `${label(ops)}: CPU per cold transform ${concordCpuMs.toFixed(1)} ms (Concord process, less ` +
          `${(idleMs / rounds).toFixed(2)} ms of its idle CPU) vs ${(bareCpuMs / rounds).toFixed(1)} ms ` +
          `(bare sharp process)`,
      );
      const reference = `bare-sharp-same-ops (${label(ops)})`;
      results.push({
        name,
        metric: 'ms_per_cold_transform',
        concord: sc.median,
        reference,
        reference_value: sb.median,
        ratio: sc.median / sb.median,
        higher_is_better: false,
        goal: '<=1.10',
        rounds,
        spread: Math.max(sc.spread, sb.spread),
      });
      results.push({
        name: `${name}-cpu`,
        metric: 'cpu_ms_per_cold_transform',
        concord: concordCpuMs,
        reference,
        reference_value: bareCpuMs / rounds,
        ratio: concordCpuMs / (bareCpuMs / rounds),
        higher_is_better: false,
        goal: '<=1.10',
        rounds,
        spread: 0, // one total over all rounds on each side
      });
    }
    await report('images-transform', results);
  } finally {
    await bare.stop();
  }
} finally {
  closeConnections();
  await server.stop();
}
