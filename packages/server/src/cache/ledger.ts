import { LRUCache } from 'lru-cache';

/**
 * What this node knows of invalidations: for each recently invalidated cache key, the seq of the
 * newest change that invalidated it. A value read from the database at log position S may be
 * stored (in any tier) or served from L2 only if S is at or after that seq: otherwise a change
 * after S made it stale. This is the whole "no stale fill" rule.
 *
 * The ledger is bounded. A key it forgets takes its seq into `floor`, which then stands for every
 * key the ledger does not hold: conservative (an older value of an unrelated key is refused and
 * read again), never wrong.
 */
export class InvalidationLedger {
  private readonly seqs: LRUCache<string, number>;
  private floorSeq = 0;

  constructor(maxKeys = 200_000) {
    this.seqs = new LRUCache<string, number>({
      max: maxKeys,
      dispose: (seq, _key, reason) => {
        if (reason === 'evict' && seq > this.floorSeq) this.floorSeq = seq;
      },
    });
  }

  /** The seq after which a value of `key` must have been read to be current. */
  lastFor(key: string): number {
    const seq = this.seqs.get(key);
    return seq === undefined ? this.floorSeq : Math.max(seq, this.floorSeq);
  }

  /** Whether a value of `key` read at `readSeq` is still current as far as this node knows. */
  admits(key: string, readSeq: number): boolean {
    return readSeq >= this.lastFor(key);
  }

  /** Records that the change at `seq` invalidated `key`. */
  record(key: string, seq: number): void {
    if (seq > (this.seqs.get(key) ?? 0)) this.seqs.set(key, seq);
  }

  /** Forgets every key: from now on only values read at or after `seq` are admitted. */
  reset(seq: number): void {
    this.seqs.clear();
    this.floorSeq = Math.max(this.floorSeq, seq);
  }

  get floor(): number {
    return this.floorSeq;
  }
}
