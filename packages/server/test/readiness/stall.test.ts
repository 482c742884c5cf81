import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Readiness } from '../../src/readiness/readiness.js';
import { watchTail } from '../../src/readiness/stallWatch.js';
import { backends } from '../support/backends.js';
import type { CacheWorld } from '../cache/harness.js';
import { cacheWorld } from '../cache/harness.js';

/** A logger whose lines the test can read. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const waitUntil = async (check: () => boolean, ms: number, what: string) => {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/*
 * After warm-up, a cache consumer that stops advancing while the head moves makes the node unready
 * and logs why; once it catches up the node is ready again.
 */
describe.each(backends())('a stalled consumer on %s', (backend) => {
  let world: CacheWorld;
  beforeAll(async () => {
    world = await cacheWorld(backend);
  });
  afterAll(async () => world?.close());

  it('makes the node unready with the reason logged, and ready again when it catches up', async () => {
    const node = world.node();
    await node.follow();
    const tail = node.coherence!.tail;
    const { logger, lines } = capturedLogger();
    const readiness = new Readiness('stall-test', new Registry(), logger, { slowWarmupMs: 60_000 });
    readiness.enter('loading');
    readiness.ready();
    const stop = watchTail({ tail, log: world.log, readiness, stallMs: 300, logger });
    try {
      // A quiet log with a stopped consumer is not a stall: nothing is waiting to be applied.
      await tail.stop();
      await new Promise((r) => setTimeout(r, 700));
      expect(readiness.isReady).toBe(true);

      // The head moves past the stopped consumer.
      await world.addUser('Una Applied');
      await waitUntil(() => !readiness.isReady, 5000, 'unready after the stall');
      const status = readiness.status();
      expect(status.status).toBe('unready');
      expect(status.reason).toMatch(
        /change-log consumer 'cache' stalled at \d+ for \d+ s while the head is at \d+/,
      );
      expect(lines.some((l) => l.msg === 'node is not ready' && String(l.reason).includes('stalled'))).toBe(
        true,
      );

      // The consumer resumes and catches up: ready again.
      tail.start();
      await waitUntil(() => readiness.isReady, 5000, 'ready after catching up');
      expect(lines.some((l) => l.msg === 'node is ready again')).toBe(true);
    } finally {
      stop();
    }
  });
});
