import { createServer } from 'node:http';
import { Server } from 'socket.io';

/** The peer: a Socket.IO server that broadcasts a given payload to every client on "go" (stdin). */
const http = createServer();
const server = new Server(http, { transports: ['websocket'], serveClient: false });
http.listen(0, '127.0.0.1', () => {
  const port = (http.address() as { port: number }).port;
  console.log(`socket.io at http://127.0.0.1:${port}`);
});
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  for (const line of chunk.split('\n').filter(Boolean)) {
    if (line.startsWith('emit ')) server.emit('change', JSON.parse(line.slice(5)));
  }
});
