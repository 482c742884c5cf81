import type { CommandContext } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import type { StatusBounds } from './status.js';
import { deriveStatus } from './status.js';

/** Records a job's transition as a change in the log, visible to administrators. */
export function recordJob(ctx: CommandContext, row: JobRow, bounds: StatusBounds, now: number): void {
  ctx.record({
    kind: 'job.updated',
    payload: { job: deriveStatus(row, now, bounds) },
    cacheKeys: [],
    audience: { scope: 'administrators' },
  });
}
