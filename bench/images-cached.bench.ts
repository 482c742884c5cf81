import { cpus } from 'node:os';
import { startImageServer, sourcePhoto, staticServerArgs } from './lib/images.js';
import { loadTest, startChild } from './lib/processes.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * (a) Serving a cached transform variant: Concord's `/img/{signature}/…` (signature check, source
 * lookup, result read with length and checksum verified) against @fastify/static serving the same
 * bytes from a file. Alternating rounds, each side loaded by autocannon from its own process.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 16;

const server = await startImageServer(await sourcePhoto());
try {
  const path = server.path({ fit: 'fill', width: 256, height: 256, format: 'webp', quality: 80 });
  const first = await fetch(`${server.url}${path}`);
  if (first.status !== 200) throw new Error(`transform failed: ${first.status}`);
  const body = Buffer.from(await first.arrayBuffer());
  const peer = await startChild(...staticServerArgs(server.dataDir, 'variant.webp', body));
  try {
    const peerUrl = `${peer.match[1]}/variant.webp`;
    const same = Buffer.from(await (await fetch(peerUrl)).arrayBuffer());
    if (!same.equals(body)) throw new Error('the peer does not serve the same bytes');
    const load = (url: string, seconds: number) => loadTest({ url, seconds, connections: CONNECTIONS });
    await load(`${server.url}${path}`, 2);
    await load(peerUrl, 2);
    const c: number[] = [];
    const p: number[] = [];
    const rows: Record<string, string | number>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const x = await load(`${server.url}${path}`, SECONDS);
      const y = await load(peerUrl, SECONDS);
      if (x.errors || x.non2xx || y.errors || y.non2xx)
        throw new Error(`failed requests: ${JSON.stringify({ x, y })}`);
      c.push(x.requestsPerSecond);
      p.push(y.requestsPerSecond);
      rows.push({
        round: r + 1,
        'concord req/s': Math.round(x.requestsPerSecond),
        'concord p99 ms': x.latencyP99,
        '@fastify/static req/s': Math.round(y.requestsPerSecond),
        '@fastify/static p99 ms': y.latencyP99,
      });
    }
    printTable(
      `GET of a cached 256×256 WebP variant (${body.length} bytes), ${CONNECTIONS} connections; ` +
        `${cpus().length} cores shared by the server and the load generator (one process each)`,
      rows,
    );
    const sc = summarize(c);
    const sp = summarize(p);
    await report('images-cached', [
      {
        name: 'images-cached',
        metric: 'requests_per_s',
        concord: sc.median,
        reference: '@fastify/static-same-file',
        reference_value: sp.median,
        ratio: sc.median / sp.median,
        higher_is_better: true,
        goal: '>=0.8',
        rounds: ROUNDS,
        spread: Math.max(sc.spread, sp.spread),
      },
    ]);
  } finally {
    await peer.stop();
  }
} finally {
  await server.stop();
}
