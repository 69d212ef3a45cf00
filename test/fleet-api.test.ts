import os from 'node:os';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { eventually, startHarness, type Harness } from './harness';
import { localEngines, uniq } from './helpers';
import { maybeRecordHistory } from './temporal-env';

describe('fleet admin API with onboarding on real engines', () => {
  let h: Harness;
  const created: string[] = [];
  beforeAll(async () => {
    h = await startHarness('fleet-api');
  });
  afterAll(async () => {
    await h.deps.prisma.workspace.deleteMany({ where: { serverId: { in: created } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: created } } });
    await h.close();
  });

  async function register(engineIndex: number, extra: Record<string, unknown> = {}) {
    const e = localEngines()[engineIndex];
    const res = await h.call('POST', '/servers', {
      body: { name: `engine-${engineIndex + 1}`, hostname: `${uniq('ws')}.local`, ipAddress: e.host, dockerPort: e.port, region: 'local', labels: { rack: 'a1' }, ...extra },
    });
    expect(res.status).toBe(202);
    created.push(res.body.server.id);
    return res.body;
  }

  const settled = (id: string) =>
    eventually(async () => {
      const r = await h.call('GET', `/servers/${id}`);
      return ['active', 'error'].includes(r.body.status) && r.body.onboarding?.status === 'COMPLETED' || r.body.onboarding?.status === 'FAILED' ? r.body : undefined;
    }, 60_000);

  it('registers the local engines and onboarding makes them active with the capacity they declare, their real CPUs beside it', async () => {
    const regs = await Promise.all([register(0), register(1)]);
    for (const reg of regs) {
      expect(reg.server.status).toBe('pending');
      expect(reg.onboarding.workflowId).toBe(`onboard-server-${reg.server.id}`);
      const s = await settled(reg.server.id);
      expect(s.status).toBe('active');
      // The local engines declare their schedulable capacity in daemon labels (deploy/local/stack.sh), so every
      // tier fits; what the hardware has is recorded beside it, and containers' CPU limits are capped at it.
      expect(s.total).toEqual({ cpu: 8, memoryMb: 16384, diskGb: 100 });
      expect(s.hostCpus).toBe(os.cpus().length);
      expect(s.daemonAudit.capacity.declared).toEqual({ cpu: 8, memoryMb: 16384, diskGb: 100 });
      expect(s.daemonAudit.capacity.real.cpu).toBe(os.cpus().length);
      expect(Math.abs(s.daemonAudit.capacity.real.memoryMb - os.totalmem() / 1024 / 1024)).toBeLessThan(64);
      expect(s.daemonAudit.capacity.real.diskGb).toBeGreaterThan(0);
      expect(s.architecture).toBe(process.arch === 'x64' ? 'amd64' : 'arm64');
      expect(s.dockerRuntime).toBe('runsc');
      // Not strict here (NODE_ENV=test): what the local engines fail is reported as waived, not hidden.
      expect([s.daemonAudit.strict, s.daemonAudit.waived]).toEqual([false, [expect.stringMatching(/^userns-remap \(/)]]);
      const findings = Object.fromEntries(s.daemonAudit.findings.map((f: { check: string; ok: boolean }) => [f.check, f.ok]));
      expect(findings).toEqual({
        'runsc runtime': true,
        'default runtime runsc': true,
        'icc disabled': true,
        'userns-remap': false,
        'no-new-privileges': true,
        'live-restore': true,
        'log rotation': true,
        'volume disk limits': true,
        'egress: metadata service blocked': true,
        'egress: private network blocked': true,
        'egress: host blocked': true,
      });
    }
    // Operators find a server's workflows in the Temporal UI by its id.
    const id = regs[0].server.id;
    const found = await eventually(async () => {
      const ids: string[] = [];
      for await (const wf of h.client.workflow.list({ query: `PodexServerId = "${id}"` })) ids.push(wf.workflowId);
      return ids.length ? ids : undefined;
    });
    expect(found).toEqual([`onboard-server-${id}`]);
    maybeRecordHistory('onboard-server', await h.client.workflow.getHandle(`onboard-server-${id}`).fetchHistory());
  });

  it('strict mode keeps a server whose daemon fails a hardening check out of service', async () => {
    const reg = await register(1, { strict: true });
    const s = await settled(reg.server.id);
    expect(s.status).toBe('error');
    expect(s.lastError).toMatch(/userns-remap/);
    const avail = await h.call('GET', '/servers/available?tier=free', { token: h.userToken });
    expect(avail.body.servers.map((x: { id: string }) => x.id)).not.toContain(reg.server.id);
  });

  it('an unreachable endpoint ends onboarding in error with the reason', async () => {
    const res = await h.call('POST', '/servers', { body: { name: 'nowhere', hostname: `${uniq('ws')}.local`, ipAddress: '127.0.0.1', dockerPort: 1 } });
    created.push(res.body.server.id);
    const s = await settled(res.body.server.id);
    expect(s.status).toBe('error');
    expect(s.lastError).toMatch(/ECONNREFUSED|connect/i);
    maybeRecordHistory('onboard-server-unreachable', await h.client.workflow.getHandle(`onboard-server-${res.body.server.id}`).fetchHistory());
  });

  it('answers bad and unauthenticated requests with the stated codes', async () => {
    const [reg] = [await register(0)];
    const id = reg.server.id;
    const bad = await h.call('POST', '/servers', { body: { name: 'x', hostname: 'ok.local', ipAddress: '999.1.1.1', dockerPort: 'high', colour: 'blue' } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/ipAddress/);
    expect(bad.body.message).toMatch(/dockerPort/);
    expect(bad.body.message).toMatch(/colour: unknown field/);
    expect((await h.call('POST', '/servers', { body: '{"name": ' })).status).toBe(400);
    expect((await h.call('PATCH', `/servers/${id}`, { body: { totalCpu: -1 } })).body.message).toMatch(/totalCpu/);
    expect((await h.call('PATCH', `/servers/${id}`, { body: {} })).status).toBe(400);
    expect((await h.call('GET', '/servers/not-a-uuid')).body.message).toMatch(/id/);
    expect((await h.call('GET', '/servers/available?tier=gold', { token: h.userToken })).body.message).toMatch(/tier/);

    expect((await h.call('GET', '/servers', { token: null })).status).toBe(401);
    expect((await h.call('GET', '/servers', { token: 'not.a.jwt' })).status).toBe(401);
    expect((await h.call('GET', '/servers', { token: null, headers: { 'x-internal-api-key': 'wrong-key-wrong-key' } })).status).toBe(401);
    expect((await h.call('GET', '/servers', { token: h.userToken })).status).toBe(403);
    expect((await h.call('DELETE', `/servers/${id}`, { token: h.userToken })).status).toBe(403);
    const internal = await h.call('GET', `/servers/${id}`, { token: null, headers: { 'x-internal-api-key': process.env.INTERNAL_API_KEY! } });
    expect(internal.status).toBe(200);

    expect((await h.call('GET', '/servers/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await h.call('POST', '/servers/00000000-0000-4000-8000-000000000000/cordon')).status).toBe(404);
    const dup = await h.call('POST', '/servers', { body: { name: 'dup', hostname: reg.server.hostname, ipAddress: '127.0.0.1' } });
    expect(dup.status).toBe(409);

    const ws = await h.deps.prisma.workspace.create({ data: { ownerId: 'u1', name: 'busy', tier: 'free', status: 'running', serverId: id } });
    const del = await h.call('DELETE', `/servers/${id}`);
    expect(del.status).toBe(409);
    expect(del.body.message).toMatch(/drain it first/);
    await h.deps.prisma.workspace.delete({ where: { id: ws.id } });
    expect((await h.call('DELETE', `/servers/${id}`)).status).toBe(204);
    expect((await h.call('GET', `/servers/${id}`)).status).toBe(404);
  });

  it('users see only servers they may choose, without internals; cordon, maintenance and audit work', async () => {
    const reg = await register(0);
    const id = reg.server.id;
    await settled(id);
    const listed = async () => (await h.call('GET', '/servers/available?tier=free', { token: h.userToken })).body.servers as Record<string, unknown>[];
    const mine = (await listed()).find((s) => s.id === id)!;
    expect(mine).toBeDefined();
    expect(Object.keys(mine).sort()).toEqual(['architecture', 'free', 'gpuType', 'hasGpu', 'id', 'name', 'region']);
    expect(JSON.stringify(mine)).not.toMatch(/127\.0\.0\.1|hostname|lastError|daemonAudit/);

    expect((await h.call('POST', `/servers/${id}/cordon`)).body.cordoned).toBe(true);
    expect((await listed()).map((s) => s.id)).not.toContain(id);
    expect((await h.call('POST', `/servers/${id}/uncordon`)).body.cordoned).toBe(false);
    expect((await listed()).map((s) => s.id)).toContain(id);

    const endsAt = new Date(Date.now() + 60_000).toISOString();
    const w = await h.call('POST', `/servers/${id}/maintenance`, { body: { endsAt, reason: 'kernel update' } });
    expect(w.status).toBe(201);
    expect((await h.call('POST', `/servers/${id}/maintenance`, { body: { endsAt: '2001-01-01T00:00:00Z' } })).body.message).toMatch(/endsAt/);
    expect((await listed()).map((s) => s.id)).not.toContain(id);
    expect((await h.call('GET', `/servers/${id}`)).body.inMaintenance).toBe(true);
    expect((await h.call('DELETE', `/servers/${id}/maintenance/${w.body.id}`)).status).toBe(204);
    expect((await listed()).map((s) => s.id)).toContain(id);

    const patched = await h.call('PATCH', `/servers/${id}`, { body: { labels: { rack: 'b2' }, region: 'eu-local' } });
    expect(patched.body.labels).toEqual({ rack: 'b2' });

    const audit = await h.call('GET', `/audit?targetType=server&targetId=${id}`);
    expect(audit.status).toBe(200);
    const actions = audit.body.entries.map((e: { action: string }) => e.action);
    expect(actions).toEqual(['server.update', 'server.maintenance.cancel', 'server.maintenance.schedule', 'server.uncordon', 'server.cordon', 'server.create']);
    const update = audit.body.entries[0];
    expect(update.actor).toBe('test-admin');
    expect(update.before.labels).toEqual({ rack: 'a1' });
    expect(update.after.labels).toEqual({ rack: 'b2' });
    expect((await h.call('GET', '/audit', { token: h.userToken })).status).toBe(403);
  });

  it('loads a missing workspace image into the engine through the API', async () => {
    const image = `podex/workspace:${uniq('onboard')}`;
    const h2 = await startHarness('fleet-image', { workspaceImage: image });
    const docker = h2.deps.fleet.engine(localEngines()[1]);
    try {
      await expect(docker.getImage(image).inspect()).rejects.toMatchObject({ statusCode: 404 });
      const e = localEngines()[1];
      const res = await h2.call('POST', '/servers', { body: { name: 'img', hostname: `${uniq('ws')}.local`, ipAddress: e.host, dockerPort: e.port } });
      created.push(res.body.server.id);
      const s = await eventually(async () => {
        const r = await h2.call('GET', `/servers/${res.body.server.id}`);
        return r.body.onboarding?.status === 'COMPLETED' ? r.body : undefined;
      }, 60_000);
      expect(s.status).toBe('active');
      const inspect = await docker.getImage(image).inspect();
      expect(inspect.Config.Labels?.['podex.image']).toBe('workspace');
    } finally {
      await docker.getImage(image).remove().catch(() => undefined);
      await h2.close();
    }
  });

  it('limits each client IP to the configured requests per minute with 429 and Retry-After', async () => {
    const h3 = await startHarness('fleet-rl', { rateLimitPerMinute: 5, trustedProxies: ['127.0.0.1'] });
    try {
      const ip = `127.9.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
      const codes: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 7; i++) {
        const r = await h3.call('GET', '/servers/available', { token: h3.userToken, headers: { 'x-forwarded-for': ip } });
        codes.push(r.status);
        if (r.status === 429) retryAfter = r.headers.get('retry-after');
      }
      expect(codes).toEqual([200, 200, 200, 200, 200, 429, 429]);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(retryAfter)).toBeLessThanOrEqual(60);
      // Another client is not affected.
      expect((await h3.call('GET', '/servers/available', { token: h3.userToken, headers: { 'x-forwarded-for': `127.10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}` } })).status).toBe(200);
    } finally {
      await h3.close();
    }
  });

  it('serves an OpenAPI document that validates', async () => {
    const doc = await h.call('GET', '/openapi.json', { token: null });
    expect(doc.status).toBe(200);
    const result = JSON.parse(
      execFileSync(process.execPath, [path.join(__dirname, 'validate-openapi.mjs')], { input: JSON.stringify(doc.body) }).toString(),
    );
    expect(result).toEqual({ valid: true, version: '3.1' });
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/servers', '/servers/{id}', '/servers/available', '/servers/{id}/cordon', '/audit']));
    expect(doc.body.paths['/servers'].post.requestBody.content['application/json'].schema.required).toEqual(['name', 'hostname', 'ipAddress']);
  });
});
