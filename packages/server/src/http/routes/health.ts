import type { FastifyInstance } from 'fastify';
import type { JobState } from '../../jobs/job.js';
import { census } from '../../jobs/runner/reaper.js';
import { runnerOptions } from '../../jobs/runner/options.js';
import { listNodes } from '../../readiness/nodeRegistry.js';
import type { ReadinessStatus } from '../../readiness/readiness.js';
import { concordOpenApi } from '../openapi.js';
import type { AppContext } from '../context.js';
import { parseParams } from '../params.js';
import { success } from '../reply.js';
import { requireUser } from '../requireUser.js';

const JOB_STATES = [
  'queued',
  'running',
  'retrying',
  'succeeded',
  'failed',
  'canceled',
] as const satisfies readonly JobState[];

/** Liveness, readiness and its status stream, the cluster's nodes, metrics and Concord's own OpenAPI document. */
export function healthRoutes(http: FastifyInstance, app: AppContext): void {
  http.get('/livez', async () => ({ status: 'ok' }));

  // 200 once warmed up and caught up, 503 with the same JSON (phase, progress, elapsed) before.
  http.get('/readyz', async (_req, reply) => {
    const status = app.readiness.status();
    const body = { ...status, mode: app.config.mode };
    if (status.status !== 'ready') reply.header('Retry-After', '2');
    return reply.code(status.status === 'ready' ? 200 : 503).send(body);
  });

  // Server-Sent Events: the status now, then every change (progress while warming, the moment the
  // node becomes ready or unready). Open to anyone, like /readyz: it tells nothing of the workspace.
  const streams = new Set<() => void>();
  http.addHook('preClose', async () => {
    for (const end of streams) end();
  });
  http.get('/api/v1/concord/status/stream', (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    let id = 0;
    const send = (status: ReadinessStatus) => {
      res.write(`id: ${++id}\nevent: status\ndata: ${JSON.stringify(status)}\n\n`);
    };
    res.write('retry: 1000\n\n');
    send(app.readiness.status());
    const off = app.readiness.subscribe(send);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    keepAlive.unref();
    const end = () => {
      off();
      clearInterval(keepAlive);
      streams.delete(end);
      res.end();
    };
    streams.add(end);
    req.raw.on('close', end);
  });

  http.get('/api/v1/concord/cluster', { preHandler: requireUser(app) }, async (req, reply) => {
    const { ignored } = parseParams(req, {});
    const head = await app.log.head();
    const jobs = await census(app.log, app.realmId, runnerOptions(app.config));
    return success(
      reply,
      {
        head,
        node: app.config.nodeId,
        nodes: await listNodes(app.store, head),
        // Every state named, zero or not, so that a status page shows the same rows every time.
        jobs: { ...Object.fromEntries(JOB_STATES.map((s) => [s, 0])), ...jobs.byState },
        jobs_unclaimed: jobs.unclaimed,
        jobs_oldest_running_ms: jobs.oldestRunningMs,
      },
      ignored,
    );
  });

  http.get('/metrics', async (_req, reply) => {
    app.cache?.observe();
    reply.header('Content-Type', app.metrics.registry.contentType);
    return app.metrics.registry.metrics();
  });

  http.get('/openapi.json', async () => concordOpenApi(app.present.externalUrl));
}
