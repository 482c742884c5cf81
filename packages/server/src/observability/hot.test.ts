import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter } from './hotCounter.js';
import { HotHistogram } from './hotHistogram.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];
const LABELS = ['GET', 'POST'].flatMap((method) =>
  ['/a', '/b/:id'].flatMap((route) => ['200', '404'].map((status) => ({ method, route, status }))),
);
const observation = fc.record({
  series: fc.nat({ max: LABELS.length - 1 }),
  value: fc.oneof(fc.constantFrom(...BUCKETS, 0, 10), fc.double({ min: 0, max: 10, noNaN: true })),
});

// The order of series in the exposition carries no meaning (prom-client keeps first-seen order).
const samples = async (r: Registry) => (await r.metrics()).split('\n').sort();

describe('hot metrics', () => {
  it('a HotHistogram exposes exactly what a prom-client Histogram does for the same observations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 200 }), async (obs) => {
        const [a, b] = [new Registry(), new Registry()];
        const config = { name: 'x_seconds', help: 'X.', labelNames: ['method', 'route', 'status'] as const };
        const reference = new Histogram({
          ...config,
          labelNames: [...config.labelNames],
          buckets: BUCKETS,
          registers: [a],
        });
        const hot = new HotHistogram({ ...config, buckets: BUCKETS, registers: [b] });
        const children = LABELS.map((l) => hot.child(l));
        for (const { series, value } of obs) {
          reference.observe(LABELS[series]!, value);
          children[series]!.observe(value);
        }
        expect(await samples(b)).toEqual(await samples(a));
      }),
      { numRuns: 100 },
    );
  });

  it('a HotCounter adds its children to the counter whenever it is collected', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ series: fc.nat({ max: LABELS.length - 1 }), scrape: fc.boolean() }), {
          maxLength: 100,
        }),
        async (steps) => {
          const [a, b] = [new Registry(), new Registry()];
          const config = { name: 'x_total', help: 'X.', labelNames: ['method', 'route', 'status'] };
          const reference = new Counter({ ...config, registers: [a] });
          const hot = new HotCounter({ ...config, registers: [b] });
          const children = LABELS.map((l) => hot.child(l));
          for (const { series, scrape } of steps) {
            reference.inc(LABELS[series]!);
            children[series]!.inc();
            // Scrapes in between must neither lose nor double-count what was pending.
            if (scrape) expect(await samples(b)).toEqual(await samples(a));
          }
          expect(await samples(b)).toEqual(await samples(a));
          expect(await samples(b)).toEqual(await samples(a));
        },
      ),
      { numRuns: 100 },
    );
  });
});
