/**
 * A user's development server inside the local workspace image (`podex-dev-server PORT`): what a
 * preview port serves in the tests and benchmarks. It answers `/headers` with the request
 * headers it received (to show what the Workspace Proxy lets through), anything else with a
 * line naming itself, and echoes WebSocket messages.
 */
import http from 'node:http';
import os from 'node:os';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 3000);
const server = http.createServer((req, res) => {
  if (req.url === '/headers') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.headers));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`podex dev server on ${port} in ${os.hostname()}\n`);
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
server.listen(port, '0.0.0.0');
