import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

/** One result line, as ../shared/BENCH.md defines it. `ratio` is always concord ÷ reference. */
export interface BenchResult {
  name: string;
  metric: string;
  concord: number;
  reference: string;
  reference_value: number;
  ratio: number;
  higher_is_better: boolean;
  goal?: string;
  rounds: number;
  spread: number;
}

/** Median, and the spread as (max − min) ÷ median over the rounds. */
export function summarize(samples: number[]): { median: number; spread: number } {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, spread: median === 0 ? 0 : (sorted.at(-1)! - sorted[0]!) / median };
}

const round = (n: number, digits = 3) => Number(n.toPrecision(digits + 2));

/** A human-readable table. */
export function printTable(title: string, rows: Record<string, string | number>[]): void {
  console.log(`\n${title}`);
  console.table(rows);
}

/** Prints one `BENCH {json}` line per result and writes them to bench/results/NAME.json. */
export async function report(benchName: string, results: BenchResult[]): Promise<void> {
  const dir = fileURLToPath(new URL('../results', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const out = results.map((r) => ({
    ...r,
    concord: round(r.concord),
    reference_value: round(r.reference_value),
    ratio: round(r.ratio, 2),
    spread: round(r.spread, 2),
  }));
  for (const r of out) console.log(`BENCH ${JSON.stringify(r)}`);
  writeFileSync(
    `${dir}/${benchName}.json`,
    JSON.stringify({ date: new Date().toISOString(), cores: cpus().length, results: out }, null, 2),
  );
}
