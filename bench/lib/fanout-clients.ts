import { readFileSync } from 'node:fs';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

/**
 * The client side of the fan-out benchmark, in its own process: opens N connections (Concord
 * event-queue WebSockets, whose queue ids it reads from a file, or Socket.IO), says "ready", then for each "go <t0>" line on stdin
 * reports when each client received the next message (ms after t0, by this process's clock via
 * the shared wall clock) as one JSON line.
 */
const [kind, url, countText, authHeader] = process.argv.slice(2) as [string, string, string, string?];
const count = Number(countText);
const ACK_DELAY_MS = Number(process.env.BENCH_ACK_DELAY_MS ?? 100);
const arrivals: number[] = [];
let expected = 0;
let round: { t0: number; got: number[] } | null = null;
const onMessage = () => {
  if (!round) return;
  round.got.push(Date.now() - round.t0);
  if (round.got.length === expected) {
    console.log(JSON.stringify({ latencies: round.got }));
    round = null;
  }
};

const opened: Promise<void>[] = [];
if (kind === 'concord') {
  const queues = JSON.parse(readFileSync(url, 'utf8')) as { base: string; queues: string[] };
  /** Connects one client, again after a refused or reset attempt (a storm of 5,000 connections). */
  const connect = (queueId: string, attempt = 0): Promise<void> =>
    new Promise((resolve) => {
      const ws = new WebSocket(`${queues.base}/api/v1/events/socket?queue_id=${queueId}`, {
        headers: { authorization: authHeader! },
      });
      let open = false;
      let last = -1;
      let ackTimer: NodeJS.Timeout | null = null;
      ws.on('error', (err) => {
        if (open) throw err;
        if (attempt >= 20) throw err;
        setTimeout(() => void connect(queueId, attempt + 1).then(resolve), 100 * (attempt + 1));
      });
      ws.on('message', (data) => {
        const msg = JSON.parse(String(data)) as { events?: { id: number }[] };
        if (!msg.events) return;
        last = msg.events[msg.events.length - 1]!.id;
        onMessage();
        // Acknowledgements only let the server trim the queue: each client sends one per burst,
        // ACK_DELAY_MS after its first unacknowledged batch, not one write per message in the
        // middle of the burst (0: acknowledge every batch at once).
        if (ACK_DELAY_MS === 0) ws.send(JSON.stringify({ ack: last }));
        else
          ackTimer ??= setTimeout(() => {
            ackTimer = null;
            ws.send(JSON.stringify({ ack: last }));
          }, ACK_DELAY_MS);
      });
      ws.once('open', () => {
        open = true;
        resolve();
      });
    });
  for (let i = 0; i < count; i++) opened.push(connect(queues.queues[i]!));
} else {
  for (let i = 0; i < count; i++) {
    const s = io(url, { transports: ['websocket'], forceNew: true });
    s.on('change', onMessage);
    opened.push(new Promise((r) => s.once('connect', () => r())));
  }
}
await Promise.all(opened);
console.log('ready');
process.stdin.setEncoding('utf8');
let buffer = '';
process.stdin.on('data', (chunk: string) => {
  buffer += chunk;
  let nl: number;
  while ((nl = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    const [cmd, t0] = line.split(' ');
    if (cmd === 'go') {
      expected = count;
      round = { t0: Number(t0), got: [] };
    } else if (cmd === 'exit') process.exit(0);
  }
});
void arrivals;
