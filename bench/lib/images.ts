import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import { existsSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { defaultLockDir } from '../../packages/server/src/images/resultStore.js';
import type { TransformOps } from '../../packages/server/src/images/transformUrl.js';
import { parseOps, signedPath } from '../../packages/server/src/images/transformUrl.js';
import { createOwner } from './owner.js';
import { startConcord } from './processes.js';

/**
 * Shared pieces of the image benchmarks: a Concord process with one uploaded source picture, the
 * bare sharp pipeline as the limit, and the child processes that drive or serve from outside the
 * benchmark's process. Run directly, this file is one of those children:
 *   `static <dir>`            @fastify/static serving `dir` (the peer of a cached variant);
 *   `sharp <source>`          on each stdin line (operations as JSON), the bare sharp pipeline once;
 *                             prints its ms, the CPU ms of the process (all threads) and the SHA-256;
 *   `sharp-http <dir>`        the bare sharp pipeline behind a bare Fastify route (the least an HTTP
 *                             image server can do): `GET /{canonical path}` (as after a signature in
 *                             Concord's /img URLs) transforms the `.jpg` of `dir` with that SHA-256,
 *                             read into memory at start, and sends the bytes;
 *                             `GET /cpu`: the CPU ms the process has used (all threads);
 *   `burst <url> <n>`         n keep-alive connections; on each stdin line, n concurrent GETs of url;
 *                             prints the time until all n answered and whether the bodies agree.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const KEY = 'bench-image-key-bench-image-key-0123456789';

/**
 * A photo-like source: gradients, a wavy texture and noise, 1600×1200 JPEG (~0.5 MB), the kind of
 * picture people upload as avatars. Deterministic, so every run transforms the same input.
 */
export async function sourcePhoto(): Promise<Buffer> {
  const width = 1600;
  const height = 1200;
  const raw = Buffer.alloc(width * height * 3);
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) * 255;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const texture = 40 * Math.sin(x / 7) * Math.cos(y / 11) + 30 * Math.sin((x + 2 * y) / 23);
      raw[i] = (x / width) * 160 + texture + rand() * 0.4;
      raw[i + 1] = (y / height) * 150 - texture + rand() * 0.4;
      raw[i + 2] = ((x + y) / (width + height)) * 180 + texture / 2 + rand() * 0.4;
    }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .blur(0.8)
    .jpeg({ quality: 85 })
    .toBuffer();
}

/**
 * Another photo like `photo`: its brightness moved by `variant` thousandths (other bytes, about the
 * same size and the same work to transform). Made by sharp, so without the 5.8 MB of raw pixels
 * {@link sourcePhoto} builds in JavaScript, whose garbage would be collected during measurements.
 */
export function photoVariant(photo: Buffer, variant: number): Promise<Buffer> {
  return sharp(photo)
    .modulate({ brightness: 1 + variant / 1000 })
    .jpeg({ quality: 85 })
    .toBuffer();
}

/** The bare sharp pipeline for `ops`: what images/transform.ts does, with nothing around it. */
export function bareTransform(source: Buffer, o: TransformOps): Promise<Buffer> {
  const img = sharp(source, { limitInputPixels: 25_000_000, failOn: 'truncated' })
    .rotate()
    .resize(o.width, o.height, { fit: o.fit === 'fill' ? 'cover' : 'inside' });
  if (o.format === 'webp') return img.webp({ quality: o.quality }).toBuffer();
  if (o.format === 'jpeg') return img.jpeg({ quality: o.quality }).toBuffer();
  if (o.format === 'avif') return img.avif({ quality: o.quality }).toBuffer();
  return img.png().toBuffer();
}

export interface ImageServer {
  url: string;
  dataDir: string;
  source: Buffer;
  sha256: string;
  /** The signed path of a transform of the source (or of another uploaded source, by SHA-256). */
  path(ops: Omit<TransformOps, 'source'>, source?: string): string;
  /** Uploads `photo` as the avatar of a new user (so as a stored source too); its SHA-256. */
  addSource(photo: Buffer): Promise<string>;
  /**
   * Empties the result store (the server then computes every variant anew), first waiting until
   * results still being written (after their response) are on disk.
   */
  clearResults(): Promise<void>;
  /** Waits until results still being written (after their response) are on disk. */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

/** A Concord process (embedded SQLite) with signing keys and `source` uploaded as the owner's avatar. */
export async function startImageServer(source: Buffer): Promise<ImageServer> {
  const concord = await startConcord({ CONCORD_IMAGE_KEYS: KEY });
  let authorization = '';
  const upload = async (user: string, photo: Buffer) => {
    const form = new FormData();
    form.append('file', new Blob([photo]), 'photo.jpg');
    const res = await fetch(`${concord.url}/api/v1/users/${user}/avatar`, {
      method: 'POST',
      headers: { authorization },
      body: form,
    });
    if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
  };
  let users = 0;
  try {
    ({ authorization } = await createOwner(concord.env));
    await upload('me', source);
  } catch (err) {
    await concord.stop();
    throw err;
  }
  const sha256 = createHash('sha256').update(source).digest('hex');
  const results = join(concord.dataDir, 'results');
  const locks = defaultLockDir(results);
  // A result is written after its response, under its lock: settled once no temporary file and no
  // lock is left (a request arriving before would be answered from the write's in-flight entry).
  const names = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
  const busy = () =>
    names(results).some((f) => f.endsWith('.tmp')) || names(locks).some((f) => f.endsWith('.lock'));
  const settle = async () => {
    while (busy()) await new Promise((r) => setTimeout(r, 2));
  };
  return {
    url: concord.url,
    dataDir: concord.dataDir,
    source,
    sha256,
    path: (ops, other) => signedPath(KEY, { ...ops, source: other ?? sha256 }),
    async addSource(photo) {
      users += 1;
      const body = new URLSearchParams({
        email: `source${users}@example.com`,
        password: `source-password-${users}`,
        full_name: `Source ${users}`,
      });
      const res = await fetch(`${concord.url}/api/v1/users`, {
        method: 'POST',
        headers: { authorization },
        body,
      });
      if (res.status !== 200) throw new Error(`create user failed: ${res.status} ${await res.text()}`);
      await upload(String(((await res.json()) as { user_id: number }).user_id), photo);
      return createHash('sha256').update(photo).digest('hex');
    },
    settle,
    async clearResults() {
      await settle();
      for (const f of readdirSync(results)) if (f.endsWith('.res')) unlinkSync(join(results, f));
    },
    async stop() {
      await concord.stop();
      // The server is killed, so it does not remove its lock directory (on /dev/shm) itself.
      rmSync(defaultLockDir(results), { recursive: true, force: true });
    },
  };
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** A GET over a keep-alive connection (node:http: less client overhead than fetch). */
export function get(url: string, agent: http.Agent = keepAlive): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** Closes the keep-alive connections of {@link get} (so the process can exit). */
export function closeConnections(): void {
  keepAlive.destroy();
}

/** The value of an unlabelled metric of a Concord process, from its own /metrics. */
export async function serverMetric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

/** CPU seconds a Concord process has used (all threads), from its own /metrics. */
export function serverCpuSeconds(url: string): Promise<number> {
  return serverMetric(url, 'concord_process_process_cpu_seconds_total');
}

/** A child of this file that answers one stdout line per stdin line. */
export interface LineChild {
  child: ChildProcess;
  /** Sends a line and resolves with the next line the child prints. */
  ask(line?: string): Promise<string>;
  stop(): Promise<void>;
}

/** Starts this file as a child in `mode`; resolves once it printed `ready`. */
export async function startLineChild(mode: 'sharp' | 'burst', args: string[]): Promise<LineChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), mode, ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  const exited = once(child, 'exit');
  const ready = await Promise.race([next(), exited.then(() => 'exited')]);
  if (ready !== 'ready') throw new Error(`${mode} child did not start: ${ready}`);
  return {
    child,
    ask(line = 'go') {
      const answer = next();
      child.stdin!.write(`${line}\n`);
      return answer;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * The arguments of {@link startChild} for the `sharp-http` child over the `.jpg` files of `dir`; its
 * URL of one transform is `${url}/${canonicalPath(ops)}`.
 */
export function sharpHttpArgs(dir: string): [string, string[], RegExp] {
  return [fileURLToPath(import.meta.url), ['sharp-http', dir], /sharp http server at (http:\/\/\S+)/];
}

/** The CPU ms the `sharp-http` child at `url` has used (all threads). */
export async function sharpHttpCpuMs(url: string): Promise<number> {
  return (JSON.parse((await get(`${url}/cpu`)).body.toString()) as { ms: number }).ms;
}

/** Writes `body` to `dir/name` and starts @fastify/static on `dir` in its own process. */
export function staticServerArgs(dir: string, name: string, body: Buffer): [string, string[], RegExp] {
  writeFileSync(join(dir, name), body);
  return [fileURLToPath(import.meta.url), ['static', dir], /static server at (http:\/\/\S+)/];
}

/** One small transform, so that sharp is loaded and its first-call costs are paid before timing. */
function warmUp(source: Buffer): Promise<Buffer> {
  return bareTransform(source, {
    fit: 'fill',
    width: 64,
    height: 64,
    format: 'webp',
    quality: 80,
    source: '',
  });
}

async function childMain(mode: string, args: string[]): Promise<void> {
  const input = createInterface({ input: process.stdin });
  if (mode === 'static') {
    const { default: Fastify } = await import('fastify');
    const { default: fastifyStatic } = await import('@fastify/static');
    const app = Fastify({ logger: false });
    await app.register(fastifyStatic, { root: args[0]!, maxAge: 31536000 * 1000, immutable: true });
    console.log(`static server at ${await app.listen({ host: '127.0.0.1', port: 0 })}`);
  } else if (mode === 'sharp-http') {
    const { readFileSync } = await import('node:fs');
    const { default: Fastify } = await import('fastify');
    // Every picture in memory before the first request, as the `sharp` child holds its sources;
    // by SHA-256, as Concord finds its stored sources.
    const files = new Map(
      readdirSync(args[0]!)
        .filter((f) => f.endsWith('.jpg'))
        .map((f) => readFileSync(join(args[0]!, f)))
        .map((bytes) => [createHash('sha256').update(bytes).digest('hex'), bytes] as const),
    );
    const app = Fastify({ logger: false });
    app.get('/cpu', async () => {
      const used = process.cpuUsage();
      return { ms: (used.user + used.system) / 1000 };
    });
    app.get<{ Params: { '*': string } }>('/*', async (req, reply) => {
      const ops = parseOps(req.params['*']);
      if (typeof ops === 'string' || !files.has(ops.source)) return reply.code(404).send();
      const body = await bareTransform(files.get(ops.source)!, ops);
      return reply.type(`image/${ops.format}`).send(body);
    });
    await warmUp(files.values().next().value!);
    console.log(`sharp http server at ${await app.listen({ host: '127.0.0.1', port: 0 })}`);
  } else if (mode === 'sharp') {
    const { readFileSync } = await import('node:fs');
    const sources = new Map<string, Buffer>([['', readFileSync(args[0]!)]]);
    await warmUp(sources.get('')!);
    console.log('ready');
    for await (const line of input) {
      if (line === 'settings') {
        // sharp's process-wide settings, which decide how much of the machine one transform uses.
        console.log(JSON.stringify({ concurrency: sharp.concurrency(), cache: sharp.cache() }));
        continue;
      }
      // `file`: another source (read once, before its first timing), else the one given at start.
      const { file = '', ...ops } = JSON.parse(line) as TransformOps & { file?: string };
      if (!sources.has(file)) sources.set(file, readFileSync(file));
      // The same buffer every time, as Concord transforms a source it keeps in memory (a source it
      // reads from the database is a buffer it has not transformed before, as a new file is here).
      // libvips' operation cache cannot reuse a decode either way: each call wraps the input in a
      // new blob, and the cache compares blobs by identity.
      const input = sources.get(file)!;
      const cpu = process.cpuUsage();
      const start = performance.now();
      const out = await bareTransform(input, ops);
      const ms = performance.now() - start;
      const used = process.cpuUsage(cpu);
      const cpuMs = (used.user + used.system) / 1000;
      console.log(JSON.stringify({ ms, cpuMs, sha256: createHash('sha256').update(out).digest('hex') }));
    }
  } else if (mode === 'burst') {
    const [url, n] = [args[0]!, Number(args[1])];
    const agent = new http.Agent({ keepAlive: true, maxSockets: n, maxFreeSockets: n });
    // Open all n connections before the first measured burst (connection setup is not the subject).
    await Promise.all(Array.from({ length: n }, () => get(`${new URL(url).origin}/livez`, agent)));
    console.log('ready');
    for await (const _ of input) {
      const start = performance.now();
      const got = await Promise.all(Array.from({ length: n }, () => get(url, agent)));
      const ms = performance.now() - start;
      const ok = got.filter((g) => g.status === 200).length;
      const shas = got.map((g) => createHash('sha256').update(g.body).digest('hex'));
      console.log(JSON.stringify({ ms, ok, distinct: new Set(shas).size, sha256: shas[0] }));
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await childMain(process.argv[2]!, process.argv.slice(3));
}
