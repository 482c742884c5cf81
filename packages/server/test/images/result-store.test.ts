import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { Counter, Registry } from 'prom-client';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultStore, decodeResult } from '../../src/images/resultStore.js';
import { freshDir } from '../support/backends.js';
import type { Variant } from './variants.js';
import { sourcePng, variants } from './variants.js';

/** How many times the crash test SIGKILLs a producing child (issue 5 asks for at least 200). */
const KILLS = Number(process.env.CONCORD_TEST_CRASH_KILLS ?? 200);

describe('result store', () => {
  let all: Variant[];
  let fresh: Map<string, Buffer>;
  let child: string;
  const dirs: { remove(): void }[] = [];
  const procs: ChildProcess[] = [];
  const newDir = () => {
    const d = freshDir('concord-results-');
    dirs.push(d);
    return d.dir;
  };
  const metric = () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'corrupt_total', help: 'x', registers: [registry] });
    return { counter, value: async () => (await counter.get()).values[0]?.value ?? 0 };
  };

  beforeAll(async () => {
    all = variants(await sourcePng());
    fresh = new Map(await Promise.all(all.map(async (v) => [v.key, await v.transform()] as const)));
    // A plain-JS bundle of the child (tsx would cost ~0.3 s per start, the crash test starts hundreds).
    const out = join(newDir(), 'child.mjs');
    await build({
      entryPoints: [fileURLToPath(new URL('./crash-child.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['sharp'],
      outfile: out,
      logLevel: 'silent',
    });
    // Resolve sharp from the repository's node_modules.
    child = join(fileURLToPath(new URL('.', import.meta.url)), '.crash-child.mjs');
    writeFileSync(child, readFileSync(out));
  });
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    for (const d of dirs) d.remove();
    rmSync(child, { force: true });
  });

  it('detects flipped bytes and truncation on the next read, regenerates, and counts it', async () => {
    const dir = newDir();
    const m = metric();
    const store = new ResultStore({ dir, maxBytes: 1e9, minFreeBytes: 0, onCorrupt: () => m.counter.inc() });
    await store.start();
    const v = all[0]!;
    let transforms = 0;
    const produce = () => {
      transforms += 1;
      return v.transform();
    };
    const first = await store.get(v.key, produce);
    expect(first.body.equals(fresh.get(v.key)!)).toBe(true);
    expect((await store.get(v.key, produce)).body.equals(first.body)).toBe(true);
    expect([transforms, await m.value()]).toEqual([1, 0]); // negative control: intact file is reused
    const file = join(dir, `${v.key}.res`);

    const flipped = readFileSync(file);
    flipped[flipped.length - 5]! ^= 0xff;
    writeFileSync(file, flipped);
    const afterFlip = await store.get(v.key, produce);
    expect(afterFlip.body.equals(fresh.get(v.key)!)).toBe(true);
    expect([transforms, await m.value()]).toEqual([2, 1]);

    truncateSync(file, statSync(file).size - 10);
    const afterTruncate = await store.get(v.key, produce);
    expect(afterTruncate.body.equals(fresh.get(v.key)!)).toBe(true);
    expect([transforms, await m.value()]).toEqual([3, 2]);
    expect(decodeResult(readFileSync(file))?.equals(fresh.get(v.key)!)).toBe(true);
  });

  it('computes 200 concurrent requests for one missing result once, identical bodies', async () => {
    const store = new ResultStore({ dir: newDir(), maxBytes: 1e9, minFreeBytes: 0 });
    await store.start();
    const v = all[1]!;
    let transforms = 0;
    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        store.get(v.key, () => {
          transforms += 1;
          return v.transform();
        }),
      ),
    );
    expect(transforms).toBe(1);
    expect(new Set(results.map((r) => r.body.toString('base64'))).size).toBe(1);
    expect(new Set(results.map((r) => r.etag)).size).toBe(1);
  });

  it('computes it once across two processes sharing the directory (200 requests each)', async () => {
    const dir = newDir();
    const countFile = join(dir, 'transforms.log');
    writeFileSync(countFile, '');
    const kids = [0, 1].map(() =>
      spawn(process.execPath, [child, 'flight', dir, '200', countFile], {
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    procs.push(...kids);
    const lines = kids.map((k) => {
      const got: string[] = [];
      let buf = '';
      k.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const parts = buf.split('\n');
        buf = parts.pop()!;
        got.push(...parts);
      });
      return got;
    });
    const until = async (pred: () => boolean) => {
      while (!pred()) await new Promise((r) => setTimeout(r, 5));
    };
    await until(() => lines.every((l) => l.includes('go')));
    for (const k of kids) k.stdin!.write('x');
    await Promise.all(kids.map((k) => once(k, 'exit')));
    const summaries = lines.map((l) => JSON.parse(l.at(-1)!) as { count: number; distinct: number });
    expect(summaries).toEqual([
      { count: 200, distinct: 1 },
      { count: 200, distinct: 1 },
    ]);
    expect(readFileSync(countFile, 'utf8').trim().split('\n')).toHaveLength(1);
    const store = new ResultStore({ dir, maxBytes: 1e9, minFreeBytes: 0 });
    expect((await store.read(all[0]!.key))?.body.equals(fresh.get(all[0]!.key)!)).toBe(true);
  });

  it(`never serves a broken result after ${KILLS} SIGKILLs of a producing process`, async () => {
    const dir = newDir();
    const m = metric();
    const reader = new ResultStore({ dir, maxBytes: 1e9, minFreeBytes: 0, onCorrupt: () => m.counter.inc() });
    let served = 0;
    let tempsLeft = 0;
    for (let i = 0; i < KILLS; i++) {
      const k = spawn(process.execPath, [child, 'crash', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(k);
      await once(k.stdout!, 'data');
      await new Promise((r) => setTimeout(r, Math.random() * 30));
      k.kill('SIGKILL');
      await once(k, 'exit');
      procs.splice(procs.indexOf(k), 1);
      tempsLeft += readdirSync(dir).filter((f) => f.endsWith('.tmp')).length;
      for (const v of all) {
        const got = await reader.read(v.key);
        if (!got) continue;
        served += 1;
        expect(got.body.equals(fresh.get(v.key)!), v.ops).toBe(true);
      }
    }
    // Every served body decodes (spot check; identity with a fresh transform is checked above).
    for (const v of all.slice(0, 3)) {
      const got = await reader.read(v.key);
      if (got) expect((await sharp(got.body).metadata()).format).toBe('webp');
    }
    expect(await m.value()).toBe(0);
    expect(served).toBeGreaterThan(KILLS); // not vacuous: results existed to be served
    console.info(
      `crash test: ${KILLS} kills, ${served} results served and verified, ${tempsLeft} temp files left by kills`,
    );
    await new ResultStore({ dir, maxBytes: 1e9, minFreeBytes: 0 }).start();
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('sweeps least recently used results to stay under the size limit', async () => {
    const dir = newDir();
    const store = new ResultStore({ dir, maxBytes: 1e9, minFreeBytes: 0 });
    await store.start();
    for (const v of all.slice(0, 6)) await store.get(v.key, v.transform);
    const base = Date.now() / 1000 - 1000;
    all.slice(0, 6).forEach((v, i) => utimesSync(join(dir, `${v.key}.res`), base + i, base + i));
    await store.read(all[0]!.key); // the oldest becomes the most recently used
    const sizes = all.slice(0, 6).map((v) => statSync(join(dir, `${v.key}.res`)).size);
    const keep = sizes[0]! + sizes[4]! + sizes[5]!;
    const limited = new ResultStore({ dir, maxBytes: keep, minFreeBytes: 0 });
    expect(await limited.sweep()).toBe(3);
    const left = readdirSync(dir)
      .filter((f) => f.endsWith('.res'))
      .sort();
    expect(left).toEqual([all[0]!, all[4]!, all[5]!].map((v) => `${v.key}.res`).sort());
    // The free-space floor: asking for more free space than any disk has removes everything.
    const floor = new ResultStore({ dir, maxBytes: 1e12, minFreeBytes: Number.MAX_SAFE_INTEGER });
    expect(await floor.sweep()).toBe(3);
  });
});
