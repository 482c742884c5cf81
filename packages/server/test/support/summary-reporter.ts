import type { Reporter } from 'vitest/reporters';

type Task = { type: string; mode?: string; result?: { state?: string }; tasks?: Task[] };

/**
 * Prints one closing line, `tests: N passed, N failed, N skipped`, after Vitest's own report, so
 * that CI (which reads a plain closing line) knows how many tests ran.
 */
export default class SummaryReporter implements Reporter {
  onFinished(files: Task[] = []): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const walk = (task: Task) => {
      if (task.type === 'test') {
        const state = task.result?.state;
        if (state === 'pass') passed++;
        else if (state === 'fail') failed++;
        else skipped++;
      }
      task.tasks?.forEach(walk);
    };
    files.forEach(walk);
    // A file that failed to load has no tests but did fail.
    failed += files.filter((f) => f.result?.state === 'fail' && !f.tasks?.length).length;
    console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  }
}
