import type { ChangeLog } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import type { Lease } from '../job.js';
import { settleDialect } from './claim.js';
import type { AttemptEnd, SettleOptions } from './settle.js';
import { settle } from './settle.js';

export type { AttemptEnd, EndRequest, EndResult } from './settle.js';

export type TransitionOptions = SettleOptions;

/**
 * Ends an attempt under the fence, in a command of its own: only the attempt that still holds the
 * lease can move the job on (a late worker gets {@link FencedOffError} and changes nothing). A
 * failure retries with exponential backoff until the last attempt, which fails the job; a cancel
 * request that arrived meanwhile ends the job canceled unless the attempt succeeded. (The runner
 * records the ends of attempts that finish together in one command: see {@link settle}.)
 */
export async function endAttempt(
  log: ChangeLog,
  realmId: number,
  lease: Lease,
  end: AttemptEnd,
  opts: TransitionOptions,
): Promise<JobRow> {
  const { value } = await log.run(realmId, (ctx) =>
    settle(ctx, settleDialect(log.store), [{ lease, end }], null, opts),
  );
  const [result] = value.results;
  if (result instanceof Error) throw result;
  return result!;
}
