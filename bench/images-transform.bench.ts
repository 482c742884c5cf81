import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { TransformOps } from '../packages/server/src/images/transformUrl.js';
import {
  closeConnections,
  get,
  serverCpuSeconds,
  sourcePhoto,
  startImageServer,
  startLineChild,
} from './lib/images.js';
import type { BenchResult } from './lib/report.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * (b) A cold transform through Concord — one HTTP GET of a signed URL whose result store is empty:
 * signature, source read from the database, single-flight lock, sharp, response (the result file is
 * written after it) — against the bare sharp pipeline on the same input with the same operations,
 * in its own process. Two variants: an avatar-sized one (the fixed per-request cost weighs most)
 * and a larger one. Rounds alternate Concord and bare sharp; the ratio is of the medians.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const WARMUP = 3;
const VARIANTS: Omit<TransformOps, 'source'>[] = [
  { fit: 'fill', width: 256, height: 256, format: 'webp', quality: 80 },
  { fit: 'fit', width: 1024, height: 1024, format: 'webp', quality: 80 },
];

const source = await sourcePhoto();
const server = await startImageServer(source);
try {
  const sourceFile = join(server.dataDir, 'source.jpg');
  writeFileSync(sourceFile, source);
  const bare = await startLineChild('sharp', [sourceFile]);
  try {
    const results: BenchResult[] = [];
    for (const ops of VARIANTS) {
      const url = `${server.url}${server.path(ops)}`;
      const label = `${ops.fit}-${ops.width}x${ops.height}-${ops.format}-q${ops.quality}`;
      const c: number[] = [];
      const b: number[] = [];
      const rows: Record<string, string | number>[] = [];
      let bytes = 0;
      let bareCpuMs = 0;
      let serverCpuBefore = 0;
      for (let r = -WARMUP; r < ROUNDS; r++) {
        // CPU time, unlike wall time, hardly depends on what else the machine runs: the server's
        // over the measured rounds (from its /metrics, one scrape before and after) against the
        // bare pipeline's.
        if (r === 0) serverCpuBefore = await serverCpuSeconds(server.url);
        await server.clearResults();
        const start = performance.now();
        const res = await get(url);
        const ms = performance.now() - start;
        if (res.status !== 200) throw new Error(`transform failed: ${res.status} ${res.body.toString()}`);
        const y = JSON.parse(await bare.ask(JSON.stringify({ ...ops, source: server.sha256 }))) as {
          ms: number;
          cpuMs: number;
          sha256: string;
        };
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
        `Cold transform of a ${source.length}-byte 1600×1200 JPEG: ${label} (${bytes} bytes out); ` +
          `Concord over HTTP (node:http keep-alive client in the benchmark process) against bare sharp ` +
          `in its own process; ${cpus().length} cores shared`,
        rows,
      );
      await server.settle(); // the writes after the responses are part of Concord's cost
      // A scrape's own cost, measured by a second one, is subtracted once.
      const serverCpuAfter = await serverCpuSeconds(server.url);
      const scrape = (await serverCpuSeconds(server.url)) - serverCpuAfter;
      const concordCpuMs = ((serverCpuAfter - serverCpuBefore - scrape) * 1000) / ROUNDS;
      const sc = summarize(c);
      const sb = summarize(b);
      console.log(
        `${label}: CPU per cold transform ${concordCpuMs.toFixed(1)} ms (Concord process) vs ` +
          `${(bareCpuMs / ROUNDS).toFixed(1)} ms (bare sharp process)`,
      );
      results.push({
        name: `images-transform-${ops.width}`,
        metric: 'ms_per_cold_transform',
        concord: sc.median,
        reference: `bare-sharp-same-ops (${label})`,
        reference_value: sb.median,
        ratio: sc.median / sb.median,
        higher_is_better: false,
        goal: '<=1.10',
        rounds: ROUNDS,
        spread: Math.max(sc.spread, sb.spread),
      });
      results.push({
        name: `images-transform-${ops.width}-cpu`,
        metric: 'cpu_ms_per_cold_transform',
        concord: concordCpuMs,
        reference: `bare-sharp-same-ops (${label})`,
        reference_value: bareCpuMs / ROUNDS,
        ratio: concordCpuMs / (bareCpuMs / ROUNDS),
        higher_is_better: false,
        goal: '<=1.10',
        rounds: ROUNDS,
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
