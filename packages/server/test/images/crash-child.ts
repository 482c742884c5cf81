import { appendFileSync, readFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ResultStore } from '../../src/images/resultStore.js';

/**
 * A child for the crash and cross-process tests: only the result store, no sharp (loading sharp
 * made each start ~10 times slower, and the crash test starts hundreds). It writes the results
 * the parent computed with the server's transform, read from `fixtures` ([{ key, body (base64) }]).
 * `crash <dir> <fixtures>`: removes and rewrites results forever, one after another, until killed
 *   (so a kill lands in the middle of a write most of the time).
 * `flight <dir> <fixtures> <n> <countFile>`: n concurrent gets of the first result; each "transform"
 *   appends a line to countFile.
 */
const [mode, dir, fixtures, n, countFile] = process.argv.slice(2);
const all = (JSON.parse(readFileSync(fixtures!, 'utf8')) as { key: string; body: string }[]).map((f) => ({
  key: f.key,
  body: Buffer.from(f.body, 'base64'),
}));
const store = new ResultStore({ dir: dir!, maxBytes: 1e9, minFreeBytes: 0 });
await store.start();

if (mode === 'crash') {
  process.stdout.write('go\n');
  for (let i = 0; ; i++) {
    const v = all[(i * 7) % all.length]!;
    await unlink(join(dir!, `${v.key}.res`)).catch(() => undefined);
    await store.get(v.key, async () => v.body);
    // A result is answered before it is written: wait for the write, so that writes never stop.
    await store.settled();
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
        // As long as a small transform takes, so that the other process's requests overlap it.
        await new Promise((r) => setTimeout(r, 20));
        return v.body;
      }),
    ),
  );
  // Exiting before the write is done would leave the other process to compute it again.
  await store.settled();
  const distinct = new Set(bodies.map((b) => b.body.toString('base64')));
  process.stdout.write(`${JSON.stringify({ count: bodies.length, distinct: distinct.size })}\n`);
  process.exit(0);
}
