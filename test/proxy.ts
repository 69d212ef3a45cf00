import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A free loopback port (closed again at once; the caller binds it next). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Proxy {
  port: number;
  pid: number | undefined;
  adminPort: number;
  /** The base URL workspaces of this proxy live under (`ws-{id}.localhost:port`). */
  baseUrl: string;
  /** Every log line Caddy wrote (JSON). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * The real Workspace Proxy (Debian's Caddy with deploy/proxy/Caddyfile) on loopback ports of
 * its own, asking `authUpstream` (a test's API) for every request.
 */
export async function startProxy(authUpstream: string, port?: number): Promise<Proxy> {
  port ??= await freePort();
  const adminPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-proxy-'));
  const child = spawn('caddy', ['run', '--config', path.join(__dirname, '..', 'deploy', 'proxy', 'Caddyfile'), '--adapter', 'caddyfile'], {
    env: {
      ...process.env,
      XDG_DATA_HOME: dir,
      XDG_CONFIG_HOME: dir,
      PODEX_PROXY_BIND: '127.0.0.1',
      PODEX_PROXY_PORT: String(port),
      PODEX_PROXY_ADMIN: `127.0.0.1:${adminPort}`,
      PODEX_AUTH_UPSTREAM: authUpstream,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const end = Date.now() + 15_000;
  for (;;) {
    const up = await new Promise<boolean>((r) => http.get(`http://127.0.0.1:${adminPort}/config/`, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)));
    if (up) break;
    if (child.exitCode !== null || Date.now() > end) throw new Error(`the Workspace Proxy did not start: ${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    pid: child.pid,
    adminPort,
    baseUrl: `http://localhost:${port}`,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ProxiedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request to the proxy with a Host header of our choosing (fetch may not set Host). */
export function viaProxy(proxy: { port: number }, host: string, reqPath = '/', headers: Record<string, string> = {}, method = 'GET'): Promise<ProxiedResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxy.port, path: reqPath, method, headers: { host, ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer from the proxy for ${host}${reqPath}`)));
    req.on('error', reject);
    req.end();
  });
}
