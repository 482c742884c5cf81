import { appendFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ResultStore } from '../../src/images/resultStore.js';
import { sourcePng, variants } from './variants.js';

/**
 * A child for the crash and cross-process tests: only the result store and sharp.
 * `crash <dir>`: produces results forever (deleting one now and then so writes never stop) until killed.
 * `flight <dir> <n> <countFile>`: n concurrent gets of variant 0; each transform appends a line to countFile.
 */
const [mode, dir, n, countFile] = process.argv.slice(2);
const store = new ResultStore({ dir: dir!, maxBytes: 1e9, minFreeBytes: 0 });
await store.start();
const all = variants(await sourcePng());

if (mode === 'crash') {
  process.stdout.write('go\n');
  for (let i = 0; ; i++) {
    const v = all[(i * 7) % all.length]!;
    await store.get(v.key, v.transform);
    if (i % 3 === 0) await unlink(join(dir!, `${v.key}.res`)).catch(() => undefined);
  }
} else if (mode === 'flight') {
  const v = all[0]!;
  process.stdout.write('go\n');
  // Wait for the parent's signal so both processes start together.
  await new Promise((r) => process.stdin.once('data', r));
  const bodies = await Promise.all(
    Array.from({ length: Number(n) }, () =>
      store.get(v.key, async () => {
        appendFileSync(countFile!, `${process.pid}\n`);
        return v.transform();
      }),
    ),
  );
  const distinct = new Set(bodies.map((b) => b.body.toString('base64')));
  process.stdout.write(`${JSON.stringify({ count: bodies.length, distinct: distinct.size })}\n`);
  process.exit(0);
}
