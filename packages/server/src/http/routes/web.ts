import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';

/**
 * The web UI: the files Vite built, at `/`. Hashed assets never change under their name, so they
 * are cached for a year; `index.html` is revalidated so that a new build reaches the browser.
 */
export async function webRoutes(http: FastifyInstance, app: AppContext): Promise<void> {
  const dir = app.config.webDir;
  if (!existsSync(join(dir, 'index.html'))) {
    app.logger.warn({ dir }, 'the web UI is not built; run `npm run build` to serve it at /');
    http.get('/', async (_req, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .send(
          '<!doctype html><title>Concord</title><p>Concord is running, but its web UI is not built. ' +
            'Run <code>npm run build</code> (or start with <code>npm start</code>).</p>',
        ),
    );
    return;
  }
  await http.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    // Looked up per request, so that a rebuild is served without a restart.
    wildcard: true,
    index: ['index.html'],
    // The build writes .br and .gz beside each asset (packages/web/scripts/compress.mjs).
    preCompressed: true,
    setHeaders(reply, path) {
      reply.header(
        'cache-control',
        path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
    },
  });
}
