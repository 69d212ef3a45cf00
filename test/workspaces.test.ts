import os from 'node:os';
import { idFromKey } from '../api/routes/workspaces';
import { PLACEMENT_RETRY_AFTER_SECONDS } from '../api/placement-check';
import { UNSATISFIABLE } from '../domain/status-reasons';
import { TIERS } from '../domain/tiers';
import { eventually, registerEngines, startHarness, type Harness } from './harness';
import { execIn, localEngines, uniq } from './helpers';
import { maybeRecordHistory } from './temporal-env';

describe('workspace provisioning and lifecycle on real engines', () => {
  let h: Harness;
  const suite = uniq('suite');
  const servers: string[] = [];
  const workspaces: string[] = [];

  beforeAll(async () => {
    h = await startHarness('workspaces');
    // This machine has two CPUs; the tests give each server room for several workspaces (the burst test narrows it again).
    servers.push(...(await registerEngines(h, 'wsrv', [0, 1], { suite })));
  });

  afterAll(async () => {
    for (const id of workspaces) {
      const w = await h.deps.prisma.workspace.findUnique({ where: { id } });
      if (w && w.status !== 'deleted' && w.status !== 'failed') await h.call('DELETE', `/workspaces/${id}`);
    }
    await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    await h.close();
  });

  async function create(body: Record<string, unknown>, wait = true) {
    const res = await h.call('POST', `/workspaces${wait ? '?wait=true' : ''}`, { token: h.userToken, body: { tier: 'free', constraints: { labels: { suite } }, ...body } });
    if (res.body?.workspace?.id) workspaces.push(res.body.workspace.id);
    return res;
  }
  const engineOf = (serverId: string) => h.deps.fleet.engine(localEngines()[servers.indexOf(serverId)]);

  it('creates a running gVisor container hardened exactly as specified, on its own network and volume', async () => {
    const res = await create({ name: 'hardened', tier: 'pro' });
    expect(res.status).toBe(201);
    const ws = res.body.workspace;
    expect(ws).toMatchObject({ status: 'running', tier: 'pro', containerName: `podex-ws-${ws.id}`, volumeName: `podex-ws-${ws.id}`, networkName: `podex-ws-${ws.id}` });
    expect(ws.httpPort).toBeGreaterThan(1024);
    expect(ws.internalIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(ws.assigned).toEqual({ cpu: 2, memoryMb: 4096, diskGb: 20 });
    expect(ws.diskLimit).toMatch(/^not enforced: overlay2 on extfs/);

    const docker = engineOf(ws.serverId);
    const c = await docker.getContainer(ws.containerName).inspect();
    expect(c.State.Running).toBe(true);
    expect(c.HostConfig).toMatchObject({
      Runtime: 'runsc',
      CapDrop: ['ALL'],
      CapAdd: ['CHOWN', 'SETUID', 'SETGID', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'NET_BIND_SERVICE'],
      SecurityOpt: ['no-new-privileges:true'],
      PidsLimit: 500,
      Memory: TIERS.pro.memoryMb * 1024 * 1024,
      MemorySwap: TIERS.pro.memoryMb * 1024 * 1024,
      NanoCpus: 2e9,
      Tmpfs: { '/tmp': 'rw,nosuid,size=1g,mode=1777', '/run': 'rw,nosuid,size=100m,mode=755' },
      NetworkMode: ws.networkName,
    });
    expect(c.Config.Labels).toMatchObject({ 'podex.workspace_id': ws.id, 'podex.managed': 'true', 'podex.owner': 'test-user' });
    // Published on the server's private address only (locally 127.0.0.1), never 0.0.0.0; the record has the port Docker chose.
    const bindings = Object.values(c.NetworkSettings.Ports ?? {}).flatMap((b) => b ?? []);
    expect(bindings.length).toBeGreaterThan(0);
    for (const b of [...bindings, ...(Object.values(c.HostConfig.PortBindings ?? {}).flat() as { HostIp: string }[])]) expect(b.HostIp).toBe('127.0.0.1');
    expect(c.NetworkSettings.Ports['8080/tcp']).toEqual([{ HostIp: '127.0.0.1', HostPort: String(ws.httpPort) }]);
    expect(Object.keys(c.NetworkSettings.Networks)).toEqual([ws.networkName]);
    const net = await docker.getNetwork(ws.networkName).inspect();
    expect(net.Options).toMatchObject({ 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.enable_ip_masquerade': 'true' });
    expect(net.Labels).toMatchObject({ 'podex.workspace_id': ws.id, 'podex.managed': 'true' });
    expect((await docker.getVolume(ws.volumeName).inspect()).Labels).toMatchObject({ 'podex.workspace_id': ws.id });
    const kernel = await execIn(docker.getContainer(ws.containerName), ['cat', '/proc/version']);
    expect(kernel.out).not.toContain(os.release());
    // Not root: the image's user, who owns /workspace and can write there; the IDE still serves on 8080.
    expect(c.Config.User).toBe('1000:1000');
    const who = await execIn(docker.getContainer(ws.containerName), ['sh', '-c', 'id -u; echo hi > /workspace/probe && cat /workspace/probe && rm /workspace/probe']);
    expect(who.out).toBe('1000\nhi\n');
    expect((await execIn(docker.getContainer(ws.containerName), ['sh', '-c', 'ps -o user,args | grep "[h]ttpd -f"'])).out).not.toMatch(/^\s*(root|0)\s/m);

    const server = (await h.call('GET', `/servers/${ws.serverId}`)).body;
    expect(server.reserved).toEqual({ cpu: 2, memoryMb: 4096, diskGb: 20 });
    // A user sees their own workspace, another user does not.
    const mine = (await h.call('GET', `/workspaces/${ws.id}`, { token: h.userToken })).body;
    expect(mine.progress).toMatchObject({ status: 'running' });
    // The engine's address is for operators: its owner sees none.
    const engine = localEngines()[servers.indexOf(ws.serverId)];
    expect(mine.progress.endpoint).toBeNull();
    expect(JSON.stringify(mine)).not.toContain(`:${engine.port}`);
    expect((await h.call('GET', `/workspaces/${ws.id}`)).body.progress.endpoint).toEqual({ host: engine.host, port: engine.port });
    const { mintToken } = await import('../api/auth');
    const other = await mintToken(process.env.JWT_SECRET_KEY!, 'someone-else', 'user');
    expect((await h.call('GET', `/workspaces/${ws.id}`, { token: other })).status).toBe(404);
  });

  it('a second workspace on the same server cannot reach the first', async () => {
    const a = (await create({ name: 'first', server: servers[0] })).body.workspace;
    const b = (await create({ name: 'second', server: servers[0] })).body.workspace;
    expect([a.status, b.status]).toEqual(['running', 'running']);
    expect(a.serverId).toBe(servers[0]);
    expect(b.serverId).toBe(servers[0]);
    const docker = engineOf(servers[0]);
    const probe = `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${a.internalIp} 8080 | head -n 1`;
    // Positive control, retried: on a loaded machine one probe can miss.
    const self = await eventually(async () => {
      const r = await execIn(docker.getContainer(a.containerName), ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 8080 | head -n 1`]);
      return /^HTTP\/1\.[01] 200/.test(r.out) ? r : undefined;
    }, 20_000, 500);
    expect(self.out).toMatch(/^HTTP\/1\.[01] 200/);
    const cross = await execIn(docker.getContainer(b.containerName), ['sh', '-c', probe]);
    expect(cross.out).not.toMatch(/HTTP/);
  });

  it('files survive stop/start and restart; delete leaves no container, network or volume and releases capacity', async () => {
    const ws = (await create({ name: 'files', server: servers[1] })).body.workspace;
    const docker = engineOf(ws.serverId);
    const c = docker.getContainer(ws.containerName);
    expect((await execIn(c, ['sh', '-c', 'echo precious > /workspace/notes.txt && sync'])).code).toBe(0);

    const stopped = await h.call('POST', `/workspaces/${ws.id}/stop`, { token: h.userToken });
    expect(stopped.body.status).toBe('stopped');
    expect((await c.inspect()).State.Running).toBe(false);
    const started = await h.call('POST', `/workspaces/${ws.id}/start`, { token: h.userToken });
    expect(started.body.status).toBe('running');
    expect((await execIn(c, ['cat', '/workspace/notes.txt'])).out).toBe('precious\n');
    const restarted = await h.call('POST', `/workspaces/${ws.id}/restart`, { token: h.userToken });
    expect(restarted.body.status).toBe('running');
    expect((await execIn(c, ['cat', '/workspace/notes.txt'])).out).toBe('precious\n');

    const before = (await h.call('GET', `/servers/${ws.serverId}`)).body.reserved;
    expect((await h.call('DELETE', `/workspaces/${ws.id}`, { token: h.userToken })).status).toBe(204);
    await expect(c.inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(docker.getNetwork(ws.networkName).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(docker.getVolume(ws.volumeName).inspect()).rejects.toMatchObject({ statusCode: 404 });
    const after = (await h.call('GET', `/servers/${ws.serverId}`)).body.reserved;
    expect(after.cpu).toBe(before.cpu - 1);
    expect((await h.call('GET', `/workspaces/${ws.id}`, { token: h.userToken })).body.status).toBe('deleted');
    expect((await h.call('POST', `/workspaces/${ws.id}/start`, { token: h.userToken })).status).toBe(409);
    maybeRecordHistory('workspace-lifecycle', await h.client.workflow.getHandle(`workspace-${ws.id}`).fetchHistory());
  });

  it('streams status changes as server-sent events, and a repeated create with the same Idempotency-Key is the same workspace', async () => {
    const key = uniq('idem');
    const first = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, headers: { 'idempotency-key': key }, body: { name: 'events', tier: 'free', constraints: { labels: { suite } } } });
    expect(first.status).toBe(201);
    const ws = first.body.workspace;
    workspaces.push(ws.id);
    const again = await h.call('POST', '/workspaces', { token: h.userToken, headers: { 'idempotency-key': key }, body: { name: 'events', tier: 'free', constraints: { labels: { suite } } } });
    expect(again.body.workspace.id).toBe(ws.id);
    expect(again.body.workflowId).toBe(first.body.workflowId);
    expect(await h.deps.prisma.workspace.count({ where: { ownerId: 'test-user', name: 'events', status: { not: 'deleted' } } })).toBe(1);

    const ac = new AbortController();
    const res = await fetch(`${h.url}/workspaces/${ws.id}/events`, { headers: { authorization: `Bearer ${h.userToken}` }, signal: ac.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    const seen: string[] = [];
    let buf = '';
    const next = async () => {
      for (;;) {
        const m = /data: (.*)\n\n/.exec(buf);
        if (m) {
          buf = buf.slice(m.index + m[0].length);
          return JSON.parse(m[1]).status as string;
        }
        const { value } = await reader.read();
        buf += Buffer.from(value!).toString();
      }
    };
    seen.push(await next());
    await h.call('POST', `/workspaces/${ws.id}/stop`, { token: h.userToken });
    seen.push(await next());
    await h.call('POST', `/workspaces/${ws.id}/start`, { token: h.userToken });
    seen.push(await next());
    ac.abort();
    expect(seen).toEqual(['running', 'stopped', 'running']);
  });

  it('a failure after the volume step compensates completely', async () => {
    // Only admins choose images.
    const res = await h.call('POST', '/workspaces?wait=true', { body: { name: 'doomed', tier: 'free', server: servers[1], image: 'podex/no-such-image:1', constraints: { labels: { suite } } } });
    if (res.body?.details?.workspace?.id) workspaces.push(res.body.details.workspace.id);
    expect(res.status).toBe(502);
    expect(res.body.message).toMatch(/image podex\/no-such-image:1 is not on the server/);
    const ws = res.body.details.workspace;
    expect(ws.status).toBe('failed');
    const docker = engineOf(servers[1]);
    const names = `podex-ws-${ws.id}`;
    await expect(docker.getContainer(names).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(docker.getNetwork(names).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(docker.getVolume(names).inspect()).rejects.toMatchObject({ statusCode: 404 });
    const row = await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } });
    expect(row.assignedCpu).toBeNull();
    maybeRecordHistory('workspace-compensated', await h.client.workflow.getHandle(`workspace-${ws.id}`).fetchHistory());
  });

  it('bad requests name the field; an impossible request is refused: its owner gets a short reason, admins which constraint excluded each server', async () => {
    const bad = await h.call('POST', '/workspaces', { token: h.userToken, body: { name: '', tier: 'gold', server: 'first', extra: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/name/);
    expect(bad.body.message).toMatch(/tier/);
    expect(bad.body.message).toMatch(/server/);
    expect(bad.body.message).toMatch(/extra: unknown field/);
    // No server has a GPU: refused before anything is recorded (test/placement-errors.test.ts has each kind of refusal).
    const gpu = { labels: { suite }, gpu: { count: 1 } };
    const none = await create({ name: 'gpu', constraints: gpu });
    expect(none.status).toBe(422);
    expect(none.body).toMatchObject({ error: 'unsatisfiable', details: { fields: [{ field: 'constraints.gpu' }] } });
    // The workflow's own refusal (the fleet changed after the API's check) is stored with the operator's detail:
    // a row accepted earlier under an Idempotency-Key, asked for again with ?wait=true.
    const key = uniq('gpu-key');
    const id = idFromKey('test-user', key);
    await h.deps.prisma.workspace.create({ data: { id, ownerId: 'test-user', name: 'gpu', tier: 'free', constraints: gpu, status: 'pending' } });
    workspaces.push(id);
    const refused = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, headers: { 'idempotency-key': key }, body: { name: 'gpu', tier: 'free', constraints: gpu } });
    expect([refused.status, refused.body.error, refused.body.message]).toEqual([422, 'unsatisfiable', UNSATISFIABLE]);
    const fleet = await h.deps.prisma.workspaceServer.findMany({ where: { id: { in: servers } } });
    const leaks = (text: string) => fleet.filter((s) => [s.name, s.hostname, s.id, s.ipAddress.replace(/\/\d+$/, '')].some((x) => text.includes(x)));
    const asOwner = (await h.call('GET', `/workspaces/${id}`, { token: h.userToken })).body;
    expect(asOwner.statusReason).toBe(UNSATISFIABLE);
    expect(asOwner.progress.error).toBe(UNSATISFIABLE);
    const list = (await h.call('GET', '/workspaces?status=failed', { token: h.userToken })).body;
    const sse = await fetch(`${h.url}/workspaces/${id}/events`, { headers: { authorization: `Bearer ${h.userToken}` } });
    const reader = sse.body!.getReader();
    const first = Buffer.from((await reader.read()).value!).toString();
    await reader.cancel();
    for (const text of [JSON.stringify(none.body), JSON.stringify(refused.body), JSON.stringify(asOwner), JSON.stringify(list), first]) expect(leaks(text)).toEqual([]);
    expect(first).toContain(UNSATISFIABLE);
    const asAdmin = (await h.call('GET', `/workspaces/${id}`)).body;
    expect(asAdmin.statusReason).toMatch(/needs 1 GPU\(s\), has 0/);
    expect(leaks(asAdmin.statusReason)).toHaveLength(fleet.length);
  });

  it('50 concurrent creates against small capacity never overbook a server; the rest are refused clearly', async () => {
    const small = uniq('small');
    for (const id of servers) {
      await h.call('PATCH', `/servers/${id}`, { body: { labels: { suite, small } } });
    }
    // Leave room for exactly three free-tier workspaces on each server.
    for (const id of servers) {
      const s = (await h.call('GET', `/servers/${id}`)).body;
      await h.call('PATCH', `/servers/${id}`, { body: { totalCpu: Math.ceil(s.reserved.cpu) + 3 } });
    }
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => create({ name: `burst-${i}`, constraints: { labels: { suite, small } } }, false)),
    );
    // Accepted while the API's check still saw room; once the reservations fill both servers, refused up front.
    const accepted = results.filter((r) => r.status === 202);
    for (const r of results.filter((x) => x.status !== 202)) {
      expect([r.status, r.body.error, r.headers.get('retry-after')]).toEqual([503, 'no_capacity', String(PLACEMENT_RETRY_AFTER_SECONDS)]);
    }
    const ids = accepted.map((r) => r.body.workspace.id as string);
    const settled = await eventually(async () => {
      const rows = await h.deps.prisma.workspace.findMany({ where: { id: { in: ids } } });
      return rows.every((r) => r.status === 'running' || r.status === 'failed') ? rows : undefined;
    }, 120_000, 500);
    const running = settled.filter((r) => r.status === 'running');
    const refused = settled.filter((r) => r.status === 'failed');
    expect(running).toHaveLength(6);
    expect(refused).toHaveLength(accepted.length - 6);
    for (const r of refused) expect(r.statusReason).toMatch(/^no capacity/);
    for (const id of servers) {
      const s = await h.deps.prisma.workspaceServer.findUniqueOrThrow({ where: { id } });
      expect(s.reservedCpu).toBeLessThanOrEqual(s.totalCpu);
      expect(running.filter((r) => r.serverId === id)).toHaveLength(3);
    }
    await Promise.all(running.map((r) => h.call('DELETE', `/workspaces/${r.id}`, { token: h.userToken })));
  });
});
