import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** A listener that must never be reached: it counts connections and closes them. */
export async function tripwire(host = '127.0.0.1') {
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  server.listen(0, host);
  await new Promise((r) => server.once('listening', r));
  return { port: (server.address() as AddressInfo).port, count: () => connections, close: () => new Promise((r) => server.close(r)) };
}
