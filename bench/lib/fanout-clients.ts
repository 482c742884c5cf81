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
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(`${queues.base}/api/v1/events/socket?queue_id=${queues.queues[i]}`, {
      headers: { authorization: authHeader! },
    });
    let last = -1;
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { events?: { id: number }[] };
      if (!msg.events) return;
      last = msg.events[msg.events.length - 1]!.id;
      ws.send(JSON.stringify({ ack: last }));
      onMessage();
    });
    opened.push(new Promise((r) => ws.once('open', () => r())));
  }
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
