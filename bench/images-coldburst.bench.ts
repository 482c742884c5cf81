import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { TransformOps } from '../packages/server/src/images/transformUrl.js';
import { sourcePhoto, startImageServer, startLineChild } from './lib/images.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * (c) 100 concurrent requests for one variant whose result store is empty, sent at once over 100
 * open keep-alive connections by a separate process: the time until all 100 are answered, against
 * the time of one bare sharp transform of that variant (in its own process). Single-flight makes
 * it one transform plus 100 responses, so the ideal is about 1; 100 transforms would be ~100 ÷ cores.
 * On a small machine 100 responses themselves take longer than a transform, so a second line
 * compares with the floor measured in the same round: one transform plus the same 100 requests
 * answered from the result store.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const WARMUP = 2;
const CONCURRENT = 100;
const OPS: Omit<TransformOps, 'source'> = {
  fit: 'fill',
  width: 256,
  height: 256,
  format: 'webp',
  quality: 80,
};

const source = await sourcePhoto();
const server = await startImageServer(source);
try {
  const sourceFile = join(server.dataDir, 'source.jpg');
  writeFileSync(sourceFile, source);
  const bare = await startLineChild('sharp', [sourceFile]);
  const burst = await startLineChild('burst', [`${server.url}${server.path(OPS)}`, String(CONCURRENT)]);
  const transforms = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return Number(/^concord_image_transforms_total (\d+)$/m.exec(text)?.[1] ?? 'NaN');
  };
  try {
    const c: number[] = [];
    const b: number[] = [];
    const f: number[] = [];
    const rows: Record<string, string | number>[] = [];
    for (let r = -WARMUP; r < ROUNDS; r++) {
      await server.clearResults();
      const before = await transforms();
      const x = JSON.parse(await burst.ask()) as { ms: number; ok: number; distinct: number; sha256: string };
      const done = (await transforms()) - before;
      const y = JSON.parse(await bare.ask(JSON.stringify({ ...OPS, source: server.sha256 }))) as {
        ms: number;
        sha256: string;
      };
      if (x.ok !== CONCURRENT || x.distinct !== 1 || x.sha256 !== y.sha256)
        throw new Error(`burst answered wrongly: ${JSON.stringify(x)} (bare ${y.sha256})`);
      await server.settle();
      // The floor: the same 100 requests with the result on disk (no transform at all).
      const w = JSON.parse(await burst.ask()) as { ms: number; ok: number; distinct: number; sha256: string };
      if (w.ok !== CONCURRENT || w.sha256 !== y.sha256) throw new Error(`warm burst: ${JSON.stringify(w)}`);
      if (r < 0) continue;
      c.push(x.ms);
      b.push(y.ms);
      f.push(y.ms + w.ms);
      rows.push({
        round: r + 1,
        [`${CONCURRENT} concurrent ms`]: x.ms.toFixed(1),
        'transforms run': done,
        'one bare transform ms': y.ms.toFixed(1),
        [`${CONCURRENT} cached ms`]: w.ms.toFixed(1),
        ratio: (x.ms / y.ms).toFixed(2),
        'ratio to transform + cached': (x.ms / (y.ms + w.ms)).toFixed(2),
      });
    }
    printTable(
      `${CONCURRENT} concurrent cold GETs of one ${OPS.fit} ${OPS.width}×${OPS.height} ${OPS.format} variant ` +
        `of a ${source.length}-byte JPEG (load from its own process over open connections) against one ` +
        `bare sharp transform; ${cpus().length} cores shared`,
      rows,
    );
    const sc = summarize(c);
    const sb = summarize(b);
    const sf = summarize(f);
    await report('images-coldburst', [
      {
        name: 'images-coldburst',
        metric: 'ms_until_all_answered',
        concord: sc.median,
        reference: 'one-bare-sharp-transform',
        reference_value: sb.median,
        ratio: sc.median / sb.median,
        higher_is_better: false,
        goal: '~1',
        rounds: ROUNDS,
        spread: Math.max(sc.spread, sb.spread),
      },
      {
        name: 'images-coldburst-vs-floor',
        metric: 'ms_until_all_answered',
        concord: sc.median,
        reference: 'one-bare-sharp-transform + 100-cached-requests',
        reference_value: sf.median,
        ratio: sc.median / sf.median,
        higher_is_better: false,
        goal: '~1',
        rounds: ROUNDS,
        spread: Math.max(sc.spread, sf.spread),
      },
    ]);
  } finally {
    await burst.stop();
    await bare.stop();
  }
} finally {
  await server.stop();
}
