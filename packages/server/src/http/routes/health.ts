import type { FastifyInstance } from 'fastify';
import { concordOpenApi } from '../openapi.js';
import type { AppContext } from '../context.js';

/** Liveness, readiness, metrics and Concord's own OpenAPI document. */
export function healthRoutes(http: FastifyInstance, app: AppContext): void {
  http.get('/livez', async () => ({ status: 'ok' }));

  http.get('/readyz', async (_req, reply) => {
    const head = await app.log.head();
    return reply.send({ status: 'ready', node: app.config.nodeId, mode: app.config.mode, head });
  });

  http.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', app.metrics.registry.contentType);
    return app.metrics.registry.metrics();
  });

  http.get('/openapi.json', async () => concordOpenApi(app.present.externalUrl));
}
