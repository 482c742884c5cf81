import type { MetricValueWithName, Registry } from 'prom-client';

/** Observations of one label set, kept as plain numbers. */
export interface HotObserver {
  observe(value: number): void;
}

interface Series extends HotObserver {
  labels: Record<string, string>;
  /** Per bucket (the last is +Inf), not cumulative. */
  counts: number[];
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram for per-request paths. prom-client's histogram validates and hashes the
 * label set on every observation, even through a `labels()` child; here a child is found once per
 * label set and an observation is a bucket search and three additions. It is registered on a
 * prom-client registry and exposes exactly what a prom-client histogram does (`_bucket` with
 * cumulative `le` buckets, `_sum`, `_count`).
 */
export class HotHistogram<L extends string> {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly series = new Map<string, Series>();

  constructor(
    readonly opts: {
      name: string;
      help: string;
      labelNames: readonly L[];
      buckets: readonly number[];
      registers: Registry[];
    },
  ) {
    for (const r of opts.registers) r.registerMetric(this as never);
  }

  get name(): string {
    return this.opts.name;
  }

  get help(): string {
    return this.opts.help;
  }

  /** The observer of one label set: look it up once and keep it. */
  child(labels: Record<L, string>): HotObserver {
    const key = this.opts.labelNames.map((n) => labels[n]).join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      const bounds = this.opts.buckets;
      s = {
        labels: { ...labels },
        counts: new Array<number>(bounds.length + 1).fill(0),
        sum: 0,
        count: 0,
        observe(value: number) {
          let i = 0;
          while (i < bounds.length && value > bounds[i]!) i++;
          this.counts[i]! += 1;
          this.sum += value;
          this.count += 1;
        },
      };
      this.series.set(key, s);
    }
    return s;
  }

  /** What a registry reads when scraped, in prom-client's shape. */
  get(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    values: MetricValueWithName<string>[];
    aggregator: 'sum';
  }> {
    const values: MetricValueWithName<string>[] = [];
    for (const s of this.series.values()) {
      // As in prom-client, a label set appears once it has been observed.
      if (s.count === 0) continue;
      let acc = 0;
      this.opts.buckets.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...s.labels }, value: acc });
      });
      values.push(
        { metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...s.labels }, value: s.count },
        { metricName: `${this.name}_sum`, labels: s.labels, value: s.sum },
        { metricName: `${this.name}_count`, labels: s.labels, value: s.count },
      );
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  reset(): void {
    this.series.clear();
  }
}
