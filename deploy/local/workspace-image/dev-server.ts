/**
 * A user's development server inside the local workspace image (`podex-dev-server PORT`): what a
 * preview port serves in the tests and benchmarks. It answers `/headers` with the request
 * headers it received (to show what the Workspace Proxy lets through), `/bytes/N` with N bytes
 * (an asset of that size, for bench:proxy), anything else with a line naming itself, and echoes
 * WebSocket messages. Keep-alive, as a development server or an IDE's server is.
 */
import http from 'node:http';
import os from 'node:os';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 3000);
const assets = new Map<number, Buffer>();
const server = http.createServer((req, res) => {
  if (req.url === '/headers') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.headers));
    return;
  }
  const bytes = /^\/bytes\/(\d{1,8})$/.exec(req.url ?? '');
  if (bytes) {
    const n = Math.min(Number(bytes[1]), 16 * 1024 * 1024);
    if (!assets.has(n)) {
      if (assets.size >= 16) assets.clear();
      assets.set(n, Buffer.alloc(n, 'x'));
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
    res.end(assets.get(n));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`podex dev server on ${port} in ${os.hostname()}\n`);
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
server.listen(port, '0.0.0.0');
