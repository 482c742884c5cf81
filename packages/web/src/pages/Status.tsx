import { useEffect, useState } from 'react';
import { callWithRetry, describeError } from '../api.js';
import { Notice } from '../components/Notice.js';
import type { ReadinessStatus } from '../components/ReadyGate.js';
import { useLive } from '../live.js';

/** One node as `GET /concord/cluster` reports it (server: readiness/nodeRegistry.ts). */
interface NodeReport {
  node: string;
  url: string;
  alive: boolean;
  status: string;
  phase: string;
  reason: string | null;
  cursor: number | null;
  head: number | null;
  lag: number | null;
  started_at: number;
  updated_at: number;
  cache: Record<string, unknown>;
}

interface Cluster {
  head: number;
  node: string;
  nodes: NodeReport[];
  jobs: Record<string, number>;
  jobs_unclaimed: number;
  jobs_oldest_running_ms: number;
}

const REFRESH_MS = 3000;

/** Numbers in a cache statistics object, flattened to `l1.hits`-style names. */
function flatten(stats: unknown, prefix = ''): [string, string][] {
  if (stats === null || typeof stats !== 'object') return [[prefix, String(stats)]];
  return Object.entries(stats as Record<string, unknown>).flatMap(([k, v]) =>
    v !== null && typeof v === 'object'
      ? flatten(v, `${prefix}${k}.`)
      : [[`${prefix}${k}`, typeof v === 'number' ? v.toLocaleString('en') : String(v)] as [string, string]],
  );
}

function since(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 90 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

/** Readiness of this node, every node of the cluster with its lag and cache, and jobs by state. */
export function Status() {
  const live = useLive();
  const [ready, setReady] = useState<{ code: number | null; body: ReadinessStatus | null } | null>(null);
  const [cluster, setCluster] = useState<Cluster | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let stopped = false;
    const load = async () => {
      try {
        const res = await fetch('/readyz', { cache: 'no-store' });
        const body = (await res.json()) as ReadinessStatus;
        if (!stopped) setReady({ code: res.status, body });
      } catch {
        if (!stopped) setReady({ code: null, body: null });
      }
      try {
        const c = await callWithRetry<Cluster>(live.session, 'GET', '/concord/cluster', {}, { attempts: 3 });
        if (!stopped) {
          setCluster(c);
          setError(null);
        }
      } catch (err) {
        if (!stopped) setError(describeError(err));
      }
    };
    void load();
    const timer = setInterval(() => void load(), REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [live.session, tick]);

  return (
    <section aria-labelledby="status-title">
      <h1 id="status-title">Server status</h1>
      <h2 id="readiness-title">This node</h2>
      {ready === null ? (
        <p>Asking the server…</p>
      ) : (
        <dl className="facts" aria-labelledby="readiness-title">
          <dt>Readiness</dt>
          <dd data-testid="readiness">
            {ready.code === 200
              ? 'Ready'
              : ready.code === null
                ? 'Unreachable'
                : `Not ready (${ready.body?.phase ?? ready.code}${ready.body?.reason ? `: ${ready.body.reason}` : ''})`}
          </dd>
          {ready.body?.node && (
            <>
              <dt>Node</dt>
              <dd>{ready.body.node}</dd>
            </>
          )}
          {ready.body?.cursor != null && (
            <>
              <dt>Cache cursor / log head</dt>
              <dd>
                {ready.body.cursor.toLocaleString('en')} / {(ready.body.head ?? 0).toLocaleString('en')}
              </dd>
            </>
          )}
        </dl>
      )}

      {error && (
        <Notice kind="error">
          Could not read the cluster status: {error}{' '}
          <button type="button" className="link" onClick={() => setTick((n) => n + 1)}>
            Retry now
          </button>
        </Notice>
      )}

      <h2 id="jobs-title">Background jobs</h2>
      {cluster && (
        <>
          <table className="grid" aria-labelledby="jobs-title" data-testid="jobs-by-state">
            <thead>
              <tr>
                {Object.keys(cluster.jobs).map((state) => (
                  <th key={state} scope="col">
                    {state}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              <tr>
                {Object.entries(cluster.jobs).map(([state, n]) => (
                  <td key={state} data-state={state}>
                    {n.toLocaleString('en')}
                  </td>
                ))}
              </tr>
            </tbody>
          </table>
          <p className="muted">
            {cluster.jobs_unclaimed > 0
              ? `${cluster.jobs_unclaimed} due job(s) not claimed by any runner. `
              : ''}
            {cluster.jobs_oldest_running_ms > 0
              ? `Oldest running attempt: ${(cluster.jobs_oldest_running_ms / 1000).toFixed(1)} s.`
              : 'No job is running.'}
          </p>
        </>
      )}

      <h2 id="nodes-title">Nodes</h2>
      {cluster && (
        <>
          <p className="muted">Log head: {cluster.head.toLocaleString('en')}</p>
          <div className="table-scroll">
            <table className="grid" aria-labelledby="nodes-title" data-testid="nodes">
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">Status</th>
                  <th scope="col">Cursor</th>
                  <th scope="col">Lag</th>
                  <th scope="col">Reported</th>
                  <th scope="col">Cache</th>
                </tr>
              </thead>
              <tbody>
                {cluster.nodes.map((n) => (
                  <tr key={n.node} data-node={n.node}>
                    <th scope="row">
                      {n.node}
                      {n.node === cluster.node ? ' (this one)' : ''}
                      <div className="muted">{n.url}</div>
                    </th>
                    <td>
                      {n.alive ? n.status : 'gone'}
                      {n.reason ? <div className="muted">{n.reason}</div> : null}
                    </td>
                    <td>{n.cursor?.toLocaleString('en') ?? '—'}</td>
                    <td data-testid="lag">{n.lag?.toLocaleString('en') ?? '—'}</td>
                    <td>{since(n.updated_at)}</td>
                    <td>
                      <details>
                        <summary>Statistics</summary>
                        <dl className="facts small">
                          {flatten(n.cache).map(([k, v]) => (
                            <div key={k}>
                              <dt>{k}</dt>
                              <dd>{v}</dd>
                            </div>
                          ))}
                        </dl>
                      </details>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
