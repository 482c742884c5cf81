import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';
import { zulipContract } from '../support/openapi.js';

/*
 * Every transition of a job is a change in the log, pushed live to administrators' event queues as
 * Concord's `concord_job` event (issue 6): a CSV sync's queued → running → succeeded, with its
 * progress and counts, reaches an administrator's queue and never a member's.
 */
describe('job status events', () => {
  let t: TestServer;
  let member: Credentials;
  beforeAll(async () => {
    t = await startTestServer('sqlite');
    member = await t.createUser({ fullName: 'Mo Member', role: Role.MEMBER });
  });
  afterAll(async () => t?.close());

  async function drain(who: Credentials, queue: { id: string; last: number }, until: (e: Ev[]) => boolean) {
    const all: Ev[] = [];
    const t0 = Date.now();
    while (!until(all)) {
      if (Date.now() - t0 > 20_000)
        throw new Error(`events did not arrive: ${JSON.stringify(all).slice(0, 1000)}`);
      const r = await t.api('GET', '/events', {
        as: who,
        query: { queue_id: queue.id, last_event_id: queue.last, dont_block: true },
      });
      expect(r.status).toBe(200);
      for (const e of r.body.events as Ev[]) {
        zulipContract().validateEvent(e);
        all.push(e);
        queue.last = Math.max(queue.last, e.id);
      }
      await new Promise((res) => setTimeout(res, 50));
    }
    return all;
  }
  type Ev = {
    id: number;
    type: string;
    op?: string;
    job?: { id: number; state: string; progress: { done: number }; counts: { created: number } };
  };

  it('an administrator sees a CSV sync go queued → running → succeeded live; a member sees none of it', async () => {
    const register = async (who: Credentials) => {
      const r = await t.api('POST', '/register', {
        as: who,
        form: { event_types: ['realm_user', 'concord_job'] },
      });
      expect(r.status).toBe(200);
      return { id: r.body.queue_id as string, last: r.body.last_event_id as number };
    };
    const adminQueue = await register(t.owner);
    const memberQueue = await register(member);

    const source = await t.api('POST', '/concord/directory_sources', {
      form: { name: 'HR', connector: 'csv' },
    });
    expect(source.status).toBe(200);
    const form = new FormData();
    form.append(
      'file',
      new Blob(
        [
          ['external_id,email,full_name,channels', 'e1,e1@corp.example,Eve One,all', 'e2,,Ed Two,all'].join(
            '\n',
          ),
        ],
        {
          type: 'text/csv',
        },
      ),
      'people.csv',
    );
    const auth = `Basic ${Buffer.from(`${t.owner.email}:${t.owner.apiKey}`).toString('base64')}`;
    const started = await fetch(`${t.url}/api/v1/concord/directory_sources/${source.body.id}/sync`, {
      method: 'POST',
      headers: { authorization: auth },
      body: form,
    });
    expect(started.status).toBe(200);
    const jobId = ((await started.json()) as { job: { id: number } }).job.id;

    const events = await drain(t.owner, adminQueue, (all) =>
      all.some((e) => e.type === 'concord_job' && e.job?.id === jobId && e.job.state === 'succeeded'),
    );
    const states = events
      .filter((e) => e.type === 'concord_job' && e.job?.id === jobId)
      .map((e) => e.job!.state);
    expect(states[0]).toBe('queued');
    expect(states).toContain('running');
    expect(states.at(-1)).toBe('succeeded');
    const last = events.filter((e) => e.type === 'concord_job').at(-1)!;
    expect(last.job!.counts.created).toBe(2);
    // The users it created reached the same queue as realm_user events.
    expect(events.filter((e) => e.type === 'realm_user' && e.op === 'add')).toHaveLength(2);

    const memberEvents = await drain(
      member,
      memberQueue,
      (all) => all.filter((e) => e.type === 'realm_user').length >= 2,
    );
    expect(memberEvents.filter((e) => e.type === 'concord_job')).toEqual([]);
  });
});
