/**
 * What a reader tailing the log saw, and the check that it saw a log whose entries become visible
 * in seq order. Seqs are contiguous and nothing is pruned during these tests, so a read that
 * returns `cursor + 2` without `cursor + 1` means a later entry became visible before an earlier
 * one: the earlier one will appear behind the reader's cursor, and a tailing consumer misses it.
 */

/** One non-empty read: the cursor the reader read after, and the seqs it got, in the order returned. */
export interface ReadBatch {
  cursor: number;
  seqs: number[];
}

/**
 * Everything wrong with a reader's trace, given the seqs that were committed (empty when it saw
 * each committed seq exactly once, in increasing order, each batch starting right at its cursor).
 */
export function traceViolations(reads: ReadBatch[], committed: number[]): string[] {
  const violations: string[] = [];
  const seenAt = new Map<number, number>();
  let cursor = reads[0]?.cursor ?? 0;
  reads.forEach((read, k) => {
    if (read.cursor !== cursor) {
      violations.push(`read ${k} started after ${read.cursor}, but the reader had reached ${cursor}`);
    }
    const first = read.seqs[0];
    if (first !== undefined && first !== read.cursor + 1) {
      violations.push(
        `read ${k} after cursor ${read.cursor} began at ${first}: ` +
          `${read.cursor + 1}..${first - 1} were not visible while ${first} was`,
      );
    }
    read.seqs.forEach((seq, i) => {
      const before = i === 0 ? read.cursor : read.seqs[i - 1]!;
      if (seq <= before) violations.push(`read ${k} returned ${seq} after ${before}: not increasing`);
      if (seenAt.has(seq)) violations.push(`seq ${seq} seen twice (reads ${seenAt.get(seq)} and ${k})`);
      else seenAt.set(seq, k);
    });
    cursor = Math.max(cursor, ...read.seqs);
  });

  const committedSet = new Set(committed);
  for (const seq of committed) {
    if (seenAt.has(seq)) continue;
    const passedAt = reads.findIndex((r) => Math.max(r.cursor, ...r.seqs) >= seq);
    violations.push(
      passedAt >= 0
        ? `seq ${seq} was committed but never seen: it appeared behind the cursor, which passed it at read ${passedAt}`
        : `seq ${seq} was committed but never seen`,
    );
  }
  for (const seq of seenAt.keys()) {
    if (!committedSet.has(seq)) violations.push(`seq ${seq} was seen but is not in the log`);
  }
  return violations;
}

/**
 * Tails a log through `read(cursor)` in a tight loop until `done()` holds and a read comes back
 * empty, moving its cursor to the newest seq each read returned (as a naive consumer would).
 * Returns the non-empty reads.
 */
export async function pollTrace(
  read: (cursor: number) => Promise<number[]>,
  done: () => boolean,
): Promise<ReadBatch[]> {
  const reads: ReadBatch[] = [];
  let cursor = 0;
  for (;;) {
    // Decide before reading: an empty read after the writers are done means everything was seen.
    const finished = done();
    const seqs = await read(cursor);
    if (seqs.length > 0) {
      reads.push({ cursor, seqs });
      cursor = Math.max(cursor, ...seqs);
    } else if (finished) {
      return reads;
    } else {
      // Still a tight loop, but one that lets timers and I/O run: on SQLite every read is served
      // from promises alone and would otherwise starve the writers' event-loop turns.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
