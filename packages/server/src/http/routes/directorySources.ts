import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isAdmin } from '../../domain/roles.js';
import { fail } from '../../errors.js';
import type { SyncScheduler } from '../../jobs/directory/scheduler.js';
import { runnerSyncScheduler } from '../../jobs/directory/scheduler.js';
import {
  createSource,
  deleteSource,
  loadSource,
  presentSource,
  updateSource,
} from '../../jobs/directory/sources.js';
import { runnerOptions } from '../../jobs/runner/options.js';
import type { AppContext } from '../context.js';
import { param, parseParams } from '../params.js';
import { pathId, success } from '../reply.js';
import { requireUser } from '../requireUser.js';

const BASE = '/api/v1/concord/directory_sources';
const settings = param.json(z.record(z.string(), z.unknown()));
// A schedule shorter than a minute would keep a large directory syncing back to back.
const schedule = param.json(
  z
    .number()
    .int()
    .min(60)
    .max(366 * 86_400)
    .nullable(),
);

/** The CSV of a "sync now": the one uploaded file, or a `csv` text parameter. */
function uploadedCsv(req: FastifyRequest): string | undefined {
  const body = (req.body ?? {}) as Record<string, unknown>;
  const files = Object.values(body).filter((v): v is Buffer => Buffer.isBuffer(v));
  if (files.length > 1) throw fail.badRequest('Upload exactly one CSV file.');
  if (files.length === 1) return files[0]!.toString('utf8');
  return undefined;
}

/**
 * Directory sources, administrators only (Concord's addition, in Zulip's style; documented in
 * openapi.ts): list, create, change, delete; "sync now" (a CSV source takes the file here), cancel,
 * and the history of syncs. Sync state comes from the job rows through a {@link SyncScheduler}.
 */
export function directorySourceRoutes(http: FastifyInstance, app: AppContext, given?: SyncScheduler): void {
  // Built on first use: the app's log and realm exist only once warm-up has opened the store.
  let built = given;
  const scheduler = {
    get: () => (built ??= runnerSyncScheduler(app.log, app.realmId, runnerOptions(app.config))),
  };
  const admin = {
    preHandler: [
      requireUser(app),
      async (req: FastifyRequest) => {
        if (!isAdmin(req.user.role)) throw fail.forbidden('Must be an organization administrator');
      },
    ],
  };
  type WithId = { Params: { id: string } };
  const source = (req: FastifyRequest<WithId>) =>
    loadSource(app.store.db, app.realmId, pathId(req.params, 'id'));

  http.get(BASE, admin, async (req, reply) => {
    const { ignored } = parseParams(req, {});
    const rows = await app.store.db
      .selectFrom('directory_sources')
      .selectAll()
      .where('realm_id', '=', app.realmId)
      .orderBy('id')
      .execute();
    const sources = await Promise.all(
      rows.map(async (r) => ({ ...presentSource(r), active_sync: await scheduler.get().active(r.id) })),
    );
    return success(reply, { sources }, ignored);
  });

  http.post(BASE, admin, async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      name: param.string(100),
      connector: param.oneOf('ldap', 'csv'),
      settings: settings.optional(),
      schedule_seconds: schedule.optional(),
      deactivate_missing: param.bool().optional(),
    });
    const { value } = await app.log.run(app.realmId, (ctx) =>
      createSource(ctx, req.user, {
        name: params.name,
        connector: params.connector,
        settings: params.settings ?? {},
        scheduleSeconds: params.schedule_seconds ?? null,
        deactivateMissing: params.deactivate_missing ?? false,
      }),
    );
    return success(reply, { id: value.id, source: presentSource(value) }, ignored);
  });

  http.patch<WithId>(`${BASE}/:id`, admin, async (req, reply) => {
    const id = pathId(req.params, 'id');
    const { params, ignored } = parseParams(req, {
      name: param.string(100).optional(),
      settings: settings.optional(),
      schedule_seconds: schedule.optional(),
      deactivate_missing: param.bool().optional(),
    });
    const { value } = await app.log.run(app.realmId, (ctx) =>
      updateSource(ctx, req.user, id, {
        name: params.name,
        settings: params.settings,
        scheduleSeconds: params.schedule_seconds,
        deactivateMissing: params.deactivate_missing,
      }),
    );
    return success(reply, { source: presentSource(value) }, ignored);
  });

  http.delete<WithId>(`${BASE}/:id`, admin, async (req, reply) => {
    const id = pathId(req.params, 'id');
    const { ignored } = parseParams(req, {});
    const active = (await scheduler.get().active(id)) !== null;
    await app.log.run(app.realmId, (ctx) => deleteSource(ctx, req.user, id, active));
    return success(reply, {}, ignored);
  });

  http.post<WithId>(`${BASE}/:id/sync`, admin, async (req, reply) => {
    const row = await source(req);
    const file = uploadedCsv(req);
    const { params, ignored } = parseParams(req, { csv: param.string(app.config.avatarMaxBytes).optional() });
    const csv = file ?? params.csv;
    if (row.connector === 'csv' && csv === undefined)
      throw fail.badRequest('A CSV source needs the file: upload one CSV file.');
    if (row.connector !== 'csv' && csv !== undefined) throw fail.badRequest('Only CSV sources take a file.');
    const { job, created } = await scheduler.get().syncNow(row.id, csv === undefined ? {} : { csv });
    if (!created && csv !== undefined)
      throw fail.badRequest(
        `A sync of this source is already in progress (job ${job.id}); cancel it or wait.`,
        { job_id: job.id },
      );
    return success(reply, { job, created }, ignored);
  });

  http.post<WithId>(`${BASE}/:id/cancel`, admin, async (req, reply) => {
    const row = await source(req);
    const { ignored } = parseParams(req, {});
    const { result, job } = await scheduler.get().cancel(row.id);
    if (result === 'not_found') throw fail.badRequest('This source has no sync in progress.');
    return success(reply, { outcome: result, job }, ignored);
  });

  http.get<WithId>(`${BASE}/:id/runs`, admin, async (req, reply) => {
    const row = await source(req);
    const { params, ignored } = parseParams(req, { limit: param.int().optional() });
    const limit = params.limit ?? 20;
    if (limit < 1 || limit > 100) throw fail.invalid('limit', 'must be between 1 and 100');
    return success(reply, { runs: await scheduler.get().history(row.id, limit) }, ignored);
  });
}
