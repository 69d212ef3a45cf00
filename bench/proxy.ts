/**
 * The Workspace Proxy, against the real stack: the real API and worker processes, Debian's
 * Caddy with deploy/proxy/Caddyfile, real engines and gVisor workspaces. The workspace serves
 * its preview port from the image's development server (Node, keep-alive), as an IDE does.
 *
 * - proxied_p50/p99_ratio: BENCH_KB (100) KB responses through the proxy with auth (a user
 *   token) against the same requests straight to the workspace's published port, same run,
 *   same concurrency (BENCH_CONCURRENCY, 8) and keep-alive, in alternating rounds.
 * - auth_added_ms_p50: a tiny request through the proxy with auth, minus the same through a
 *   second Caddy whose one route is a static reverse_proxy to the same port (no auth step).
 *   The 100 KB requests also go through that plain Caddy: `plain_proxy_p50_ratio` is the proxy
 *   hop's own share, a floor no forward-auth proxy can go below on this machine; and the CPU
 *   milliseconds per request of the whole machine, of Caddy and of the API are reported.
 * - route_ready_ms: from the workspace's `running` (the time its record says so) to the first
 *   200 through its URL (median of BENCH_READY (5) new workspaces).
 * - route_switch_ms: in a migration, from the record's switch to the first 200 from the target.
 * - routes, routes_apply_ms: with BENCH_ROUTES (10,000) more workspaces routed (rows in the
 *   registry, as many routes in the table), how long a new one takes from `running` to answering.
 * - ws_echo_ok, ws_survived_changes: a WebSocket echo through the proxy; one held open (and
 *   echoing every 100 ms) while 20 other workspaces are created, stopped, started and migrated.
 *
 * Last line: one JSON object with those fields and the settings used.
 */
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { mintToken } from '../api/auth';
import { config } from '../lib/config';
import { execIn } from '../lib/docker-exec';
import { parseEndpoints } from '../lib/docker-fleet';
import { createPrisma } from '../lib/prisma';
import { Client, Connection } from '@temporalio/client';
import { terminateOpenWorkflows } from '../test/helpers';
import { freePort, startProxy, type Proxy } from '../test/proxy';
import { apiClient, benchFleet, machineCpuSeconds, percentile, processCpuSeconds, removeLabelled, round, startApi, startWorker, stop, grantBenchUser } from './lib';

const KB = Number(process.env.BENCH_KB ?? 100);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const ROUNDS = 4;
const READY_N = Number(process.env.BENCH_READY ?? 5);
const ROUTES = Number(process.env.BENCH_ROUTES ?? 10_000);
const CHANGES = 20;
/** BENCH_ONLY=latency measures the request latencies alone (proxied, direct, the auth step). */
const ONLY_LATENCY = process.env.BENCH_ONLY === 'latency';
const OWNER = 'bench-proxy';
const log = (msg: string, extra: Record<string, unknown> = {}) => console.error(JSON.stringify({ msg, ...extra }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `n` requests over `concurrency` keep-alive connections; returns each one's latency (ms). */
async function load(port: number, host: string, reqPath: string, headers: Record<string, string>, n: number, concurrency: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const out: number[] = [];
  let next = 0;
  const one = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = http.request({ host: '127.0.0.1', port, path: reqPath, headers: { host, ...headers }, agent }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`status ${res.statusCode} from ${host}`))));
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) out.push(await one());
    }),
  );
  agent.destroy();
  return out;
}

function get(port: number, host: string, reqPath: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: reqPath, headers: { host, ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.setTimeout(5_000, () => req.destroy());
    req.on('error', () => resolve({ status: -1, body: '' }));
    req.end();
  });
}

/** A Caddy with one static route to `upstream` and nothing else: the proxy's own cost without the auth step. */
async function plainCaddy(upstream: string): Promise<{ port: number; stop(): Promise<void> }> {
  const [port, admin] = [await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-plain-caddy-'));
  fs.writeFileSync(path.join(dir, 'Caddyfile'), `{\n\tadmin 127.0.0.1:${admin}\n\tauto_https off\n}\nhttp://:${port} {\n\tbind 127.0.0.1\n\treverse_proxy ${upstream}\n}\n`);
  const child = spawn('caddy', ['run', '--config', path.join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], { env: { ...process.env, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir }, stdio: 'ignore' });
  for (let i = 0; !(await fetch(`http://127.0.0.1:${admin}/config/`).then((r) => r.ok).catch(() => false)); i++) {
    if (i > 100) throw new Error('plain Caddy did not start');
    await sleep(100);
  }
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const c = config();
  const prisma = createPrisma(c.DATABASE_URL, 4);
  const fleet = benchFleet(c);
  const engines = parseEndpoints(process.env.PODEX_LOCAL_ENGINES).slice(0, 2);
  const cleanDb = async () => {
    await prisma.migration.deleteMany({ where: { workspaceId: { in: (await prisma.workspace.findMany({ where: { ownerId: OWNER }, select: { id: true } })).map((w) => w.id) } } });
    await prisma.workspace.deleteMany({ where: { ownerId: { in: [OWNER, `${OWNER}-bulk`] } } });
    await prisma.workspaceServer.deleteMany({ where: { hostname: { startsWith: 'bench-proxy-' } } });
  };
  const cleanEngines = () => Promise.all(engines.map((e) => removeLabelled(fleet.engine(e), [`podex.owner=${OWNER}`])));
  await cleanDb();
  await cleanEngines();

  const [apiPort, proxyPort] = [await freePort(), await freePort()];
  const taskQueue = `bench-proxy-${process.pid}`;
  const env = { TEMPORAL_TASK_QUEUE: taskQueue, MIGRATION_HOLD_HEALTHY_SECONDS: '1', WORKSPACE_BASE_URL: `http://localhost:${proxyPort}` };
  const worker = await startWorker(taskQueue, env);
  const api = await startApi(apiPort, env);
  let output: object | undefined;
  let proxy: Proxy | undefined;
  let plain: { port: number; stop(): Promise<void> } | undefined;
  try {
    proxy = await startProxy(`127.0.0.1:${apiPort}`, proxyPort);
    const base = `http://127.0.0.1:${apiPort}`;
    const userToken = await mintToken(c.JWT_SECRET_KEY, OWNER, 'user');
    const admin = apiClient(base, await mintToken(c.JWT_SECRET_KEY, 'bench-admin', 'admin'));
    const user = apiClient(base, userToken);
    await grantBenchUser(admin, OWNER);
    const auth = { authorization: `Bearer ${userToken}` };
    const servers: string[] = [];
    for (const [i, e] of engines.entries()) {
      const res = await admin('POST', '/servers', { name: `bench-proxy-${i + 1}`, hostname: `bench-proxy-${i + 1}-${process.pid}.local`, ipAddress: e.host, dockerPort: e.port });
      servers.push(res.body.server.id);
    }
    for (const id of servers) {
      for (let i = 0; (await admin('GET', `/servers/${id}`)).body.status !== 'active'; i++) {
        if (i > 300) throw new Error(`server ${id} did not become active`);
        await sleep(200);
      }
      await admin('PATCH', `/servers/${id}`, { totalCpu: 64, totalMemoryMb: 262_144, totalDiskGb: 4096 });
    }
    const engineOf = (serverId: string) => fleet.engine(engines[servers.indexOf(serverId)]);
    const hostOf = (id: string, port?: number) => `${port ? `${port}-` : ''}ws-${id}.localhost:${proxyPort}`;
    const create = async (name: string, server = servers[0], wait = true) => {
      const res = await user('POST', `/workspaces${wait ? '?wait=true' : ''}`, { name, tier: 'free', server, previewPorts: [3000] });
      if (res.status >= 300 && !(res.status === 202 && !wait)) throw new Error(`create ${name}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.workspace as { id: string; serverId: string; containerName: string };
    };
    const devServer = async (ws: { id: string; containerName: string }, serverId: string) => {
      const ctr = engineOf(serverId).getContainer(ws.containerName);
      const exec = await ctr.exec({ Cmd: ['podex-dev-server', '3000'], AttachStdout: false, AttachStderr: false });
      await exec.start({ Detach: true });
      for (let i = 0; (await execIn(ctr, ['sh', '-c', "printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 3000 | grep -q '^HTTP/'"])).code !== 0; i++) {
        if (i > 100) throw new Error('development server did not start');
        await sleep(200);
      }
    };
    /** From `running` (its record's time) to the first 200 through the proxy. */
    const readyTime = async (name: string): Promise<number> => {
      const ws = await create(name, servers[0], false);
      let okAt = 0;
      for (let i = 0; i < 6000 && !okAt; i++) {
        const r = await get(proxyPort, hostOf(ws.id), '/', auth);
        if (r.status === 200) okAt = Date.now();
        else await sleep(5);
      }
      const row = await prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } });
      if (!okAt || row.status !== 'running') throw new Error(`workspace ${name} did not answer (status ${row.status})`);
      const runningAt = (await prisma.$queryRaw<{ at: Date }[]>`SELECT updated_at AS at FROM workspaces WHERE id = ${ws.id}::uuid`)[0].at.getTime();
      return okAt - runningAt;
    };

    // The measured workspace and its development server.
    const ws = await create('bench-proxied');
    await devServer(ws, ws.serverId);
    const published = (await user('GET', `/workspaces/${ws.id}`)).body.previews[0].hostPort as number;
    const asset = `/bytes/${KB * 1024}`;
    plain = await plainCaddy(`127.0.0.1:${published}`);

    // Throughput-sized requests, alternating rounds so the machine's drift hits both sides alike.
    log('measuring proxied against direct', { kb: KB, concurrency: CONCURRENCY, requests: REQUESTS });
    await load(published, `127.0.0.1:${published}`, asset, {}, 200, CONCURRENCY);
    await load(proxyPort, hostOf(ws.id, 3000), asset, auth, 200, CONCURRENCY);
    const direct: number[] = [];
    const proxied: number[] = [];
    const plainProxied: number[] = [];
    // CPU seconds of the whole machine, and of the proxy and the API, in each kind of round.
    const cpu = { direct: 0, proxied: 0, proxiedCaddy: 0, proxiedApi: 0 };
    const sample = () => ({ machine: machineCpuSeconds(), caddy: processCpuSeconds(proxy!.pid), api: processCpuSeconds(api.pid) });
    for (let r = 0; r < ROUNDS; r++) {
      let s0 = sample();
      direct.push(...(await load(published, `127.0.0.1:${published}`, asset, {}, REQUESTS / ROUNDS, CONCURRENCY)));
      cpu.direct += sample().machine - s0.machine;
      s0 = sample();
      proxied.push(...(await load(proxyPort, hostOf(ws.id, 3000), asset, auth, REQUESTS / ROUNDS, CONCURRENCY)));
      const s1 = sample();
      cpu.proxied += s1.machine - s0.machine;
      cpu.proxiedCaddy += s1.caddy - s0.caddy;
      cpu.proxiedApi += s1.api - s0.api;
      plainProxied.push(...(await load(plain.port, `127.0.0.1:${plain.port}`, asset, {}, REQUESTS / ROUNDS, CONCURRENCY)));
    }
    const perRequestMs = (s: number) => round((s * 1000) / REQUESTS, 3);
    // The auth step alone: tiny requests, one at a time, through the proxy with and without it.
    const withAuth: number[] = [];
    const withoutAuth: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      withoutAuth.push(...(await load(plain.port, `127.0.0.1:${plain.port}`, '/bytes/1', {}, 250, 1)));
      withAuth.push(...(await load(proxyPort, hostOf(ws.id, 3000), '/bytes/1', auth, 250, 1)));
    }

    const latency = {
      proxied_p50_ratio: round(percentile(proxied, 50) / percentile(direct, 50)),
      proxied_p99_ratio: round(percentile(proxied, 99) / percentile(direct, 99)),
      proxied_p50_ms: round(percentile(proxied, 50)),
      direct_p50_ms: round(percentile(direct, 50)),
      proxied_p99_ms: round(percentile(proxied, 99)),
      direct_p99_ms: round(percentile(direct, 99)),
      // The same requests through a Caddy with a static route and no auth step: the proxy hop's own share.
      plain_proxy_p50_ms: round(percentile(plainProxied, 50)),
      plain_proxy_p99_ms: round(percentile(plainProxied, 99)),
      // What the proxy hop alone costs against direct: no forward-auth proxy can go below it here.
      plain_proxy_p50_ratio: round(percentile(plainProxied, 50) / percentile(direct, 50)),
      plain_proxy_p99_ratio: round(percentile(plainProxied, 99) / percentile(direct, 99)),
      // CPU milliseconds per 100 KB request, the whole machine (this load generator included).
      cpu_ms_per_request_direct: perRequestMs(cpu.direct),
      cpu_ms_per_request_proxied: perRequestMs(cpu.proxied),
      cpu_ms_per_request_proxied_caddy: perRequestMs(cpu.proxiedCaddy),
      cpu_ms_per_request_proxied_api: perRequestMs(cpu.proxiedApi),
      auth_added_ms_p50: round(percentile(withAuth, 50) - percentile(withoutAuth, 50), 3),
      tiny_with_auth_ms_p50: round(percentile(withAuth, 50), 3),
      tiny_without_auth_ms_p50: round(percentile(withoutAuth, 50), 3),
    };
    const settings = { request_kb: KB, concurrency: CONCURRENCY, keep_alive: true, requests_per_side: REQUESTS, auth_over: 'loopback TCP', upstream: 'the workspace image’s Node development server on a preview port (gVisor)' };
    if (ONLY_LATENCY) {
      output = { ...latency, ...settings };
      return;
    }

    // WebSocket echo, and one held open while 20 other workspaces start, stop and move.
    const sock = new WebSocket(`ws://127.0.0.1:${proxyPort}/`, { headers: { host: hostOf(ws.id, 3000), ...auth } });
    await new Promise<void>((resolve, reject) => sock.once('open', () => resolve()).once('error', reject));
    let closed = false;
    sock.on('close', () => (closed = true));
    let sent = 0;
    let echoed = 0;
    sock.on('message', () => echoed++);
    const first = await new Promise<string>((r) => {
      sock.once('message', (d) => r(String(d)));
      sock.send('ping-0');
      sent++;
    });
    const wsEchoOk = first === 'ping-0' ? 1 : 0;
    const ticker = setInterval(() => {
      if (!closed) {
        sock.send(`ping-${sent}`);
        sent++;
      }
    }, 100);
    log('20 other workspaces change while the WebSocket is open');
    const others = await Promise.all(Array.from({ length: CHANGES }, (_, i) => create(`bench-other-${i}`, servers[i % 2])));
    await Promise.all(others.slice(0, 10).map((o) => user('POST', `/workspaces/${o.id}/stop`)));
    await Promise.all(others.slice(0, 5).map((o) => user('POST', `/workspaces/${o.id}/start`)));
    for (const o of others.slice(10, 14)) await admin('POST', `/workspaces/${o.id}/migrate?wait=true`, { targetServer: servers[1 - servers.indexOf(o.serverId)] });
    clearInterval(ticker);
    await sleep(500);
    const wsSurvived = !closed && echoed === sent ? 1 : 0;
    sock.close();
    log('websocket', { sent, echoed, closed });

    // Route ready, then route switch in a migration.
    const ready: number[] = [];
    for (let i = 0; i < READY_N; i++) ready.push(await readyTime(`bench-ready-${i}`));
    const mover = await create('bench-mover');
    let firstOkAfterMove = 0;
    let sawMoving = false;
    let polling = true;
    const poller = (async () => {
      while (polling && !firstOkAfterMove) {
        const r = await get(proxyPort, hostOf(mover.id), '/', auth);
        if (r.status === 503) sawMoving = true;
        else if (r.status === 200 && sawMoving) firstOkAfterMove = Date.now();
        await sleep(5);
      }
    })();
    const moved = await admin('POST', `/workspaces/${mover.id}/migrate?wait=true`, { targetServer: servers[1] });
    for (let i = 0; i < 400 && !firstOkAfterMove; i++) await sleep(5);
    polling = false;
    await poller;
    if (moved.body?.migration?.outcome !== 'moved' || !firstOkAfterMove) throw new Error(`migration: ${JSON.stringify(moved.body?.migration)}`);
    const switchedAt = (await prisma.workspace.findUniqueOrThrow({ where: { id: mover.id } })).updatedAt.getTime();
    const routeSwitch = firstOkAfterMove - switchedAt;

    // Ten thousand more routes: rows of running workspaces on the first server.
    log('adding routes', { routes: ROUTES });
    await prisma.$executeRaw`
      INSERT INTO workspaces (owner_id, name, tier, status, server_id, http_port, published_ports, preview_ports)
      SELECT ${`${OWNER}-bulk`}, 'bulk-' || g, 'free', 'running', ${servers[0]}::uuid, 20000 + (g % 40000), '{}'::jsonb, '{}'::int[]
        FROM generate_series(1, ${ROUTES}) g`;
    await sleep(3_000);
    const routes = Object.keys((await admin('GET', '/proxy/routes')).body.http.routers).length;
    const applied: number[] = [];
    for (let i = 0; i < READY_N; i++) applied.push(await readyTime(`bench-apply-${i}`));

    const result = {
      ...latency,
      route_ready_ms: round(percentile(ready, 50), 0),
      route_ready_ms_all: ready.map((v) => round(v, 0)),
      route_switch_ms: round(routeSwitch, 0),
      routes,
      routes_apply_ms: round(percentile(applied, 50), 0),
      routes_apply_ms_all: applied.map((v) => round(v, 0)),
      ws_echo_ok: wsEchoOk,
      ws_survived_changes: wsSurvived,
      ws_messages_echoed: echoed,
      ...settings,
    };
    output = result;
  } finally {
    await plain?.stop();
    await proxy?.stop();
    await stop(api);
    await stop(worker);
    // The workspaces' own workflows would wait for ever on a queue nobody polls any more.
    const connection = await Connection.connect({ address: c.TEMPORAL_ADDRESS });
    await terminateOpenWorkflows(new Client({ connection, namespace: c.TEMPORAL_NAMESPACE }), taskQueue, 'bench:proxy finished').catch((err: Error) => log('terminating workflows failed', { err: err.message }));
    await connection.close();
    await cleanEngines();
    await cleanDb();
    await prisma.$disconnect();
    // Printed after the clean-up, so that it is the last line whatever the clean-up says.
    if (output) console.log(JSON.stringify(output));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
