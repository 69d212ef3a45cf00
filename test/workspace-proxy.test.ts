import WebSocket from 'ws';
import { mintToken } from '../api/auth';
import { WorkspaceTokens } from '../api/workspace-tokens';
import { config } from '../lib/config';
import { eventually, registerEngines, startHarness, type Harness } from './harness';
import { execIn, localEngines, uniq } from './helpers';
import { freePort, startProxy, viaProxy, type Proxy } from './proxy';

/**
 * Users reach their workspaces through the real Workspace Proxy (Debian's Caddy with
 * deploy/proxy/Caddyfile), which asks the real API for every request; real engines, real
 * gVisor workspaces.
 */
describe('the Workspace Proxy routes ws-{id} to the right server', () => {
  let h: Harness;
  let proxy: Proxy;
  let otherToken: string;
  const suite = uniq('proxy');
  const servers: string[] = [];
  const workspaces: string[] = [];
  let ws: { id: string; serverId: string; containerName: string; url: string };
  let host: string;
  let previewHost: string;

  beforeAll(async () => {
    const port = await freePort();
    h = await startHarness('proxy', { migrationHoldHealthyMs: 1_000, workspaceBaseUrl: `http://localhost:${port}`, workspaceSignInUrl: 'http://127.0.0.1:9/login' });
    proxy = await startProxy(h.url.replace('http://', ''), port);
    otherToken = await mintToken(config().JWT_SECRET_KEY, 'other-user', 'user');
    servers.push(...(await registerEngines(h, 'proxy', [0, 1], { suite })));
    const res = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, body: { name: 'proxied', tier: 'free', server: servers[0], previewPorts: [3000], constraints: { labels: { suite } } } });
    expect(res.status).toBe(201);
    ws = res.body.workspace;
    workspaces.push(ws.id);
    host = `ws-${ws.id}.localhost:${proxy.port}`;
    previewHost = `3000-ws-${ws.id}.localhost:${proxy.port}`;
    // What the user runs in the workspace: a marker on the IDE's port and a development server on the preview port.
    const c = engineOf(ws.serverId).getContainer(ws.containerName);
    expect((await execIn(c, ['sh', '-c', `echo ${ws.id}-source > /var/www/whoami.txt`])).code).toBe(0);
    await startDevServer(ws.serverId);
  });

  afterAll(async () => {
    try {
      for (const id of workspaces) {
        const w = await h.deps.prisma.workspace.findUnique({ where: { id } });
        if (w && w.status !== 'deleted' && w.status !== 'failed') await h.call('DELETE', `/workspaces/${id}`);
      }
      await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
      await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    } finally {
      await proxy?.stop();
      await h?.close();
    }
  });

  const engineOf = (serverId: string) => h.deps.fleet.engine(localEngines()[servers.indexOf(serverId)]);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  async function startDevServer(serverId: string) {
    const c = engineOf(serverId).getContainer(ws.containerName);
    const exec = await c.exec({ Cmd: ['podex-dev-server', '3000'], AttachStdout: false, AttachStderr: false });
    await exec.start({ Detach: true });
    await eventually(async () => (await execIn(c, ['sh', '-c', `printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 3000 | grep -q '^HTTP/'`])).code === 0, 30_000);
  }

  it('answers at its host name once running, with the body of its own HTTP server, and shows the URL', async () => {
    expect(ws.url).toBe(`http://ws-${ws.id}.localhost:${proxy.port}/`);
    const res = await viaProxy(proxy, host, '/whoami.txt', bearer(h.userToken));
    expect(res.status).toBe(200);
    expect(res.body.trim()).toBe(`${ws.id}-source`);
    const preview = await viaProxy(proxy, previewHost, '/', bearer(h.userToken));
    expect(preview.status).toBe(200);
    expect(preview.body).toMatch(/^podex dev server on 3000/);
    const view = (await h.call('GET', `/workspaces/${ws.id}`, { token: h.userToken })).body;
    expect(view.previews).toEqual([{ port: 3000, url: `http://3000-ws-${ws.id}.localhost:${proxy.port}/`, hostPort: expect.any(Number) }]);
  });

  it('keeps a server’s private address while its workspaces’ ports are bound to it', async () => {
    expect((await h.call('GET', `/servers/${servers[0]}`)).body.privateAddress).toBeNull();
    const res = await h.call('PATCH', `/servers/${servers[0]}`, { body: { privateAddress: '127.0.0.2' } });
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(/^privateAddress:/);
    expect((await h.call('PATCH', `/servers/${servers[0]}`, { body: { privateAddress: 'not-an-ip' } })).status).toBe(400);
  });

  it('refuses requests without credentials (401, or a sign-in redirect for browsers) and hides the workspace from other users', async () => {
    const api = await viaProxy(proxy, host, '/whoami.txt');
    expect(api.status).toBe(401);
    expect(api.headers['www-authenticate']).toMatch(/Bearer/);
    const browser = await viaProxy(proxy, host, '/whoami.txt', { accept: 'text/html' });
    expect(browser.status).toBe(302);
    expect(browser.headers.location).toBe(`http://127.0.0.1:9/login?next=${encodeURIComponent(`http://${host}/whoami.txt`)}`);
    expect((await viaProxy(proxy, host, '/whoami.txt', bearer('not-a-token'))).status).toBe(401);
    const other = await viaProxy(proxy, host, '/whoami.txt', bearer(otherToken));
    expect(other.status).toBe(404);
    expect(other.body).not.toContain(ws.id);
    expect((await viaProxy(proxy, previewHost, '/', bearer(otherToken))).status).toBe(404);
    // An admin may open any workspace.
    expect((await viaProxy(proxy, host, '/whoami.txt', bearer(h.adminToken))).status).toBe(200);
    // A port the workspace did not declare, and a host that is no workspace's, are a clear 404.
    const undeclared = await viaProxy(proxy, `5000-ws-${ws.id}.localhost:${proxy.port}`, '/', bearer(h.userToken));
    expect(undeclared.status).toBe(404);
    expect(undeclared.body).toMatch(/not a preview port/);
    expect((await viaProxy(proxy, `api.localhost:${proxy.port}`, '/', bearer(h.userToken))).status).toBe(404);
  });

  it('gives admins the same routes as a Traefik HTTP-provider document, and nobody else', async () => {
    expect((await h.call('GET', '/proxy/routes', { token: h.userToken })).status).toBe(403);
    const doc = (await h.call('GET', '/proxy/routes')).body;
    const name = `ws-${ws.id}`;
    expect(doc.http.routers[name]).toEqual({ rule: `Host(\`ws-${ws.id}.localhost\`)`, service: name, middlewares: ['podex-auth'] });
    const record = await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } });
    expect(doc.http.services[name].loadBalancer.servers).toEqual([{ url: `http://127.0.0.1:${record.httpPort}` }]);
    expect(doc.http.routers[`3000-${name}`].service).toBe(`3000-${name}`);
    expect(doc.http.middlewares['podex-auth'].forwardAuth.address).toBe(`${h.url}/proxy/auth`);
  });

  it('never dials an upstream a client names itself', async () => {
    const spoof = { 'x-podex-upstream': h.url.replace('http://', '') };
    expect((await viaProxy(proxy, host, '/healthz', spoof)).status).toBe(401);
    const res = await viaProxy(proxy, host, '/whoami.txt', { ...spoof, ...bearer(h.userToken) });
    expect(res.body.trim()).toBe(`${ws.id}-source`);
  });

  it('hands a browser a cookie for that one host through a one-time ticket, and the workspace never sees our credentials', async () => {
    const open = await fetch(`${h.url}/workspaces/${ws.id}/open?port=3000`, { headers: bearer(h.userToken), redirect: 'manual' });
    expect(open.status).toBe(302);
    const ticketUrl = new URL(open.headers.get('location')!);
    expect(ticketUrl.host).toBe(previewHost);
    const other = await fetch(`${h.url}/workspaces/${ws.id}/open`, { headers: bearer(otherToken), redirect: 'manual' });
    expect(other.status).toBe(404);

    const redeem = await viaProxy(proxy, previewHost, `/headers${ticketUrl.search}`, { accept: 'text/html' });
    expect(redeem.status).toBe(302);
    expect(redeem.headers.location).toBe('/headers');
    const setCookie = String(redeem.headers['set-cookie']);
    expect(setCookie).toMatch(/^podex_ws=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    const cookie = setCookie.split(';')[0];
    // A ticket opens once.
    expect((await viaProxy(proxy, previewHost, `/headers${ticketUrl.search}`)).status).toBe(401);

    // An Authorization header never reaches the workspace (ours or anyone's); the app's own cookies do.
    const seen = await viaProxy(proxy, previewHost, '/headers', { cookie: `theme=dark; ${cookie}; lang=en`, authorization: 'Basic c2VjcmV0' });
    expect(seen.status).toBe(200);
    const headers = JSON.parse(seen.body);
    expect(headers.authorization).toBeUndefined();
    expect(headers.cookie).toBe('theme=dark; lang=en');
    expect(JSON.stringify(headers)).not.toMatch(/podex_ws|podex_ticket|x-podex/i);

    // The cookie is scoped to that host: the IDE's host and another workspace's do not take it.
    expect((await viaProxy(proxy, host, '/whoami.txt', { cookie })).status).toBe(401);

    // On the IDE's port too (busybox httpd shows what it got through CGI): no Authorization, no cookie of ours.
    const cgi = await viaProxy(proxy, host, '/cgi-bin/headers', { ...bearer(h.userToken), cookie: `${cookie}; app=1` });
    expect(cgi.status).toBe(200);
    expect(cgi.body).toContain('HTTP_COOKIE=app=1');
    expect(cgi.body).not.toMatch(/AUTHORIZATION|podex_ws/i);
  });

  it('opens one preview port with a signed share link until it expires', async () => {
    const bad = await h.call('POST', `/workspaces/${ws.id}/share`, { token: h.userToken, body: { port: 8080 } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/^port:/);
    expect((await h.call('POST', `/workspaces/${ws.id}/share`, { token: otherToken, body: { port: 3000 } })).status).toBe(404);
    const share = await h.call('POST', `/workspaces/${ws.id}/share`, { token: h.userToken, body: { port: 3000, expiresInMinutes: 5 } });
    expect(share.status).toBe(201);
    const link = new URL(share.body.url);
    expect(link.host).toBe(previewHost);

    const visit = await viaProxy(proxy, previewHost, `/headers${link.search}`);
    expect(visit.status).toBe(302);
    expect(visit.headers.location).toBe('/headers');
    const cookie = String(visit.headers['set-cookie']).split(';')[0];
    const seen = await viaProxy(proxy, previewHost, '/headers', { cookie });
    expect(seen.status).toBe(200);
    expect(seen.body).not.toMatch(/podex_ws|podex_share/);
    // The visitor gets that port and nothing else of the workspace.
    expect((await viaProxy(proxy, host, '/', { cookie })).status).toBe(401);

    const tokens = new WorkspaceTokens(config().JWT_SECRET_KEY);
    const expired = await tokens.mint('share', { sub: 'test-user', role: 'share', host: previewHost.replace(/:\d+$/, '') }, -60);
    const late = await viaProxy(proxy, previewHost, `/?podex_share=${expired.token}`);
    expect(late.status).toBe(401);
    expect(late.body).toMatch(/expired/);
  });

  it('passes WebSockets through to a workspace port', async () => {
    const sock = new WebSocket(`ws://127.0.0.1:${proxy.port}/echo`, { headers: { host: previewHost, ...bearer(h.userToken) } });
    await new Promise<void>((resolve, reject) => sock.once('open', () => resolve()).once('error', reject));
    const echoed = new Promise<string>((r) => sock.once('message', (d) => r(String(d))));
    sock.send('hello through the proxy');
    expect(await echoed).toBe('hello through the proxy');
    sock.close();
    const refused = new WebSocket(`ws://127.0.0.1:${proxy.port}/echo`, { headers: { host: previewHost, ...bearer(otherToken) } });
    const status = await new Promise<number>((r) => refused.once('unexpected-response', (_req, res) => r(res.statusCode!)).once('open', () => r(101)));
    expect(status).toBe(404);
  });

  it('says "moving" (503, Retry-After) while the workspace migrates and while its server drains, then answers from the target', async () => {
    const seen: { at: number; status: number; state?: string; retryAfter?: string }[] = [];
    const marks: [string, number][] = [];
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const r = await viaProxy(proxy, host, '/', bearer(h.userToken)).catch((e: Error) => ({ status: -1, headers: {} as Record<string, string>, body: e.message }));
        seen.push({ at: Date.now(), status: r.status, state: r.headers['x-podex-workspace-state'] as string | undefined, retryAfter: r.headers['retry-after'] as string | undefined });
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    try {
      const moved = await h.call('POST', `/workspaces/${ws.id}/migrate?wait=true`, { body: { targetServer: servers[1] } });
      marks.push(['migrated', Date.now()]);
      expect(moved.body.migration).toMatchObject({ outcome: 'moved', targetServerId: servers[1] });
      // The target is a new container: what the proxy returns now comes from it.
      const target = engineOf(servers[1]).getContainer(ws.containerName);
      expect((await execIn(target, ['sh', '-c', `echo ${ws.id}-target > /var/www/whoami.txt`])).code).toBe(0);
      expect((await viaProxy(proxy, host, '/whoami.txt', bearer(h.userToken))).body.trim()).toBe(`${ws.id}-target`);

      const drain = await h.call('POST', `/servers/${servers[1]}/drain`, { body: { deadline: new Date(Date.now() + 10 * 60_000).toISOString(), maxParallel: 1 } });
      expect(drain.status).toBe(202);
      await eventually(async () => (await h.call('GET', `/servers/${servers[1]}`)).body.status === 'drained', 120_000, 500);
      const back = engineOf(servers[0]).getContainer(ws.containerName);
      expect((await execIn(back, ['sh', '-c', `echo ${ws.id}-drained > /var/www/whoami.txt`])).code).toBe(0);
      expect((await viaProxy(proxy, host, '/whoami.txt', bearer(h.userToken))).body.trim()).toBe(`${ws.id}-drained`);
    } finally {
      polling = false;
      await poll;
      await h.call('POST', `/servers/${servers[1]}/uncordon`);
      await h.deps.prisma.workspaceServer.update({ where: { id: servers[1] }, data: { status: 'active', cordoned: false } });
    }
    // Runs of equal answers, for a readable failure.
    const runs = seen.reduce<string[]>((acc, s, i) => (i && seen[i - 1].status === s.status ? acc : [...acc, `${s.status}${s.state ? `/${s.state}` : ''}@${s.at - seen[0].at}`]), []);
    process.stdout.write(`proxy during moves: ${runs.join(' ')}; ${marks.map(([m, t]) => `${m}@${t - seen[0].at}`).join(' ')}\n`);
    const statuses = new Set(seen.map((s) => s.status));
    expect([...statuses].sort()).toEqual([200, 503]);
    const moving = seen.filter((s) => s.status === 503);
    expect(moving.every((s) => s.state === 'moving' && s.retryAfter === '5')).toBe(true);
    expect(seen.filter((s) => s.status === 404 || s.status === 502 || s.status === -1)).toEqual([]);
  });

  it('keeps a terminal and a proxied WebSocket open while 20 other workspaces start, stop and migrate', async () => {
    // The moves above made a new container: the user starts the development server again.
    await startDevServer((await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } })).serverId!);
    const terminal = new WebSocket(`${h.url.replace('http', 'ws')}/workspaces/${ws.id}/terminal`, { headers: bearer(h.userToken) });
    const proxied = new WebSocket(`ws://127.0.0.1:${proxy.port}/`, { headers: { host: previewHost, ...bearer(h.userToken) } });
    await Promise.all([terminal, proxied].map((sock) => new Promise<void>((resolve, reject) => sock.once('open', () => resolve()).once('error', reject))));
    const closed: string[] = [];
    terminal.once('close', () => closed.push('terminal'));
    proxied.once('close', () => closed.push('proxied'));
    let screen = '';
    terminal.on('message', (d) => (screen += String(d)));
    let echoes = 0;
    proxied.on('message', () => echoes++);
    let sent = 0;
    const ticker = setInterval(() => {
      proxied.send(`tick-${sent++}`);
      terminal.send(Buffer.from(`echo tick-$((${sent}*2))\r`));
    }, 200);
    const others: string[] = [];
    try {
      const created = await Promise.all(
        Array.from({ length: 20 }, (_, i) => h.call('POST', '/workspaces?wait=true', { token: otherToken, body: { name: `churn-${i}`, tier: 'free', server: servers[i % 2], constraints: { labels: { suite } } } })),
      );
      for (const r of created) {
        expect(r.status).toBe(201);
        others.push(r.body.workspace.id);
      }
      workspaces.push(...others);
      await Promise.all(others.slice(0, 10).map((id) => h.call('POST', `/workspaces/${id}/stop`, { token: otherToken })));
      await Promise.all(others.slice(0, 5).map((id) => h.call('POST', `/workspaces/${id}/start`, { token: otherToken })));
      const moves = await Promise.all(
        created.slice(10, 14).map((r) => h.call('POST', `/workspaces/${r.body.workspace.id}/migrate?wait=true`, { body: { targetServer: servers[1 - servers.indexOf(r.body.workspace.serverId)] } })),
      );
      // A move that rolled back shows its whole record (its reason) in the failure.
      for (const m of moves) expect(m.body.migration.outcome === 'moved' ? 'moved' : JSON.stringify(m.body)).toBe('moved');
    } finally {
      clearInterval(ticker);
    }
    await eventually(async () => echoes === sent && screen.includes(`tick-${sent * 2}`), 10_000, 100);
    expect(closed).toEqual([]);
    terminal.close();
    proxied.close();
    await Promise.all(others.map((id) => h.call('DELETE', `/workspaces/${id}`)));
  }, 240_000);

  it('keeps routes equal to the registry without any announcement, and they survive a proxy and an API restart', async () => {
    // A change no workflow announced (an operator's SQL) reaches the proxy through the route table's catch-up.
    await h.deps.prisma.$executeRaw`UPDATE workspaces SET route_hold = 'moving', updated_at = now() WHERE id = ${ws.id}::uuid`;
    await eventually(async () => (await viaProxy(proxy, host, '/', bearer(h.userToken))).headers['x-podex-workspace-state'] === 'moving', 5_000, 100);
    await h.deps.prisma.$executeRaw`UPDATE workspaces SET route_hold = NULL, updated_at = now() WHERE id = ${ws.id}::uuid`;
    await eventually(async () => (await viaProxy(proxy, host, '/', bearer(h.userToken))).status === 200, 5_000, 100);

    // A container's host port that changed outside any workflow (Docker restarted it) is put right by the next heartbeat.
    const right = (await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } })).httpPort;
    await h.deps.prisma.$executeRaw`UPDATE workspaces SET http_port = 1, updated_at = now() WHERE id = ${ws.id}::uuid`;
    await eventually(async () => (await viaProxy(proxy, host, '/', bearer(h.userToken))).status === 502, 5_000, 100);
    const { createHeartbeatActivities } = await import('../activities/heartbeat');
    const serverId = (await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } })).serverId!;
    await createHeartbeatActivities(h.deps).heartbeatServer(serverId, 3, 10_000, 60);
    expect((await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } })).httpPort).toBe(right);
    await eventually(async () => (await viaProxy(proxy, host, '/', bearer(h.userToken))).status === 200, 5_000, 100);

    // A new proxy process (same configuration, nothing loaded into it) routes at once.
    await proxy.stop();
    proxy = await startProxy(h.url.replace('http://', ''), proxy.port);
    expect((await viaProxy(proxy, host, '/', bearer(h.userToken))).status).toBe(200);

    // A new API process (a fresh route table, read from the registry) behind another proxy.
    const { createApp, createApiServer, apiSettings } = await import('../api/app');
    const app = createApp({ fleet: h.deps.fleet, prisma: h.deps.prisma, redis: h.deps.redis, temporal: h.client, logger: h.deps.logger, settings: { ...apiSettings(config()), workspaceBaseUrl: `http://localhost:${proxy.port}` } });
    const server = createApiServer(app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const second = await startProxy(`127.0.0.1:${(server.address() as { port: number }).port}`);
    try {
      const res = await viaProxy(second, `ws-${ws.id}.localhost:${second.port}`, '/', bearer(h.userToken));
      expect(res.status).toBe(200);
    } finally {
      await second.stop();
      server.close();
      await (app.locals.close as () => Promise<void>)();
    }
  });

  it('says "stopped" for a stopped workspace, answers again once started, and is gone once deleted', async () => {
    expect((await h.call('POST', `/workspaces/${ws.id}/stop`, { token: h.userToken })).status).toBe(200);
    const stopped = await viaProxy(proxy, host, '/', { ...bearer(h.userToken), accept: 'text/html' });
    expect(stopped.status).toBe(503);
    expect(stopped.headers['x-podex-workspace-state']).toBe('stopped');
    expect(stopped.body).toMatch(/stopped/);
    expect((await h.call('POST', `/workspaces/${ws.id}/start`, { token: h.userToken })).status).toBe(200);
    expect((await viaProxy(proxy, host, '/', bearer(h.userToken))).status).toBe(200);
    expect((await h.call('DELETE', `/workspaces/${ws.id}`, { token: h.userToken })).status).toBe(204);
    expect((await viaProxy(proxy, host, '/', bearer(h.userToken))).status).toBe(404);
  });
});
