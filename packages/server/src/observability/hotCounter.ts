import { Counter } from 'prom-client';
import type { CounterConfiguration, LabelValues } from 'prom-client';

/** A count kept as a plain number on a hot path; its {@link HotCounter} adds it up when scraped. */
export interface HotCount {
  inc(): void;
}

interface Pending<L extends string> extends HotCount {
  labels: LabelValues<L>;
  n: number;
}

/**
 * A Prometheus counter for per-request paths. prom-client hashes the label set on every `inc`
 * (a `labels()` child does too), which cost more than the cache lookup it counted; the children
 * of this counter are plain numbers, added to the counter whenever it is collected (a scrape of
 * /metrics, or `get()`), so what Prometheus reads is the same.
 */
export class HotCounter<L extends string = string> extends Counter<L> {
  private readonly hot: Pending<L>[] = [];

  constructor(config: Omit<CounterConfiguration<L>, 'collect'>) {
    super({
      ...config,
      collect(this: Counter<L>) {
        (this as HotCounter<L>).flushHot();
      },
    });
  }

  /** The count of one label set, for a caller that keeps it (create children once, not per call). */
  child(labels: LabelValues<L>): HotCount {
    const pending: Pending<L> = {
      labels,
      n: 0,
      inc() {
        this.n += 1;
      },
    };
    this.hot.push(pending);
    return pending;
  }

  private flushHot(): void {
    for (const p of this.hot) {
      if (p.n === 0) continue;
      const n = p.n;
      p.n = 0;
      this.inc(p.labels, n);
    }
  }
}
