import autocannon from 'autocannon';

/** The load generator process: runs autocannon once and prints a JSON summary as its last line. */
const opts = JSON.parse(process.argv[2]!) as {
  url: string;
  headers?: Record<string, string>;
  seconds: number;
  connections: number;
};
const result = await autocannon({
  url: opts.url,
  headers: opts.headers,
  duration: opts.seconds,
  connections: opts.connections,
  pipelining: 1,
});
console.log(
  JSON.stringify({
    requestsPerSecond: result.requests.average,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  }),
);
