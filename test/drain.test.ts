import { Worker } from '@temporalio/worker';
import { WORKFLOW_ID } from '../lib/constants';
import { drainServerWorkflow } from '../workflows';
import { registerEngines, eventually, startHarness, type Harness } from './harness';
import { execIn, localEngines, uniq, WORKSPACE_SUMS } from './helpers';
import { maybeRecordHistory, replayOptions } from './temporal-env';

const SUMS = WORKSPACE_SUMS;

describe('draining a server', () => {
  let h: Harness;
  const suite = uniq('drain');
  const servers: string[] = [];
  const workspaces: string[] = [];

  beforeAll(async () => {
    h = await startHarness('drain', { migrationHoldHealthyMs: 1_000 });
    servers.push(...(await registerEngines(h, 'drain', [0, 1], { suite })));
  });

  afterAll(async () => {
    for (const id of workspaces) await h.call('DELETE', `/workspaces/${id}`);
    await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    await h.close();
  });

  it('refuses a drain it cannot run, naming the field', async () => {
    const past = await h.call('POST', `/servers/${servers[0]}/drain`, { body: { deadline: new Date(Date.now() - 1000).toISOString() } });
    expect(past.status).toBe(400);
    expect(JSON.stringify(past.body)).toContain('deadline');
    const zero = await h.call('POST', `/servers/${servers[0]}/drain`, { body: { deadline: new Date(Date.now() + 60_000).toISOString(), maxParallel: 0 } });
    expect(zero.status).toBe(400);
    expect(JSON.stringify(zero.body)).toContain('maxParallel');
    expect((await h.call('POST', `/servers/${servers[0]}/drain/pause`)).status).toBe(409);
  });

  it('moves every workspace with its files, never more than maxParallel at once, pauses and resumes, then the server can go', async () => {
    const sums = new Map<string, string>();
    for (const [i, size] of [52_428_800, 4096, 1024, 2048].entries()) {
      const res = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, body: { name: `drained-${i}`, tier: 'free', server: servers[0], constraints: { labels: { suite } } } });
      expect(res.status).toBe(201);
      const ws = res.body.workspace;
      workspaces.push(ws.id);
      const c = h.deps.fleet.engine(localEngines()[0]).getContainer(ws.containerName);
      expect((await execIn(c, ['sh', '-c', `mkdir -p /workspace/d && head -c ${size} /dev/urandom > /workspace/d/data.bin && echo ${i} > /workspace/id && sync`])).code).toBe(0);
      sums.set(ws.id, (await execIn(c, ['sh', '-c', SUMS])).stdout);
    }
    // One of them is stopped: it is moved and stays stopped.
    expect((await h.call('POST', `/workspaces/${workspaces[3]}/stop`, { token: h.userToken })).body.status).toBe('stopped');

    const started = await h.call('POST', `/servers/${servers[0]}/drain`, { body: { deadline: new Date(Date.now() + 10 * 60_000).toISOString(), maxParallel: 2 } });
    expect(started.status).toBe(202);
    // Paused at once: what is in flight finishes, nothing new starts.
    expect((await h.call('POST', `/servers/${servers[0]}/drain/pause`)).status).toBe(202);
    let maxInFlight = 0;
    const failures: number[] = [];
    const watch = async () => {
      const res = await h.call('GET', `/servers/${servers[0]}/drain`);
      // Every poll answers, copies in flight included (their heartbeat details are read through the payload codec).
      if (res.status !== 200) failures.push(res.status);
      const d = res.body;
      // The slots table is the fleet-wide truth. (The drain's own view may still say 'migrating' for a
      // child that has released its slot and is finishing, while the next one has started.)
      const rows = await h.deps.prisma.migration.count({ where: { sourceServerId: servers[0] } });
      maxInFlight = Math.max(maxInFlight, rows);
      return d;
    };
    const held = await eventually(async () => {
      const d = await watch();
      return d.paused && d.blocked === 'paused by an operator' && d.workspaces.length === 4 && !d.workspaces.some((w: { phase: string }) => w.phase === 'migrating') ? d : undefined;
    }, 120_000, 300);
    const queued = held.workspaces.filter((w: { phase: string }) => w.phase === 'queued').length;
    expect(queued).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await watch()).workspaces.filter((w: { phase: string }) => w.phase === 'queued').length).toBe(queued);

    expect((await h.call('POST', `/servers/${servers[0]}/drain/resume`)).status).toBe(202);
    const done = await eventually(async () => {
      const d = await watch();
      return d.workflowStatus === 'COMPLETED' ? d : undefined;
    }, 240_000, 300);
    expect(done.phase).toBe('drained');
    expect(failures).toEqual([]);
    expect(done.maxParallelSeen).toBeLessThanOrEqual(2);
    expect(maxInFlight).toBeLessThanOrEqual(2);
    expect(maxInFlight).toBeGreaterThanOrEqual(1);
    process.stdout.write(`drain: most migrations seen in flight ${Math.max(maxInFlight, done.maxParallelSeen)} (maxParallel 2)\n`);
    expect(done.workspaces.map((w: { phase: string }) => w.phase)).toEqual(['moved', 'moved', 'moved', 'moved']);
    expect(done.workspaces[0].bytesCopied).toBeGreaterThan(50 * 1024 * 1024);

    for (const [i, id] of workspaces.entries()) {
      const ws = (await h.call('GET', `/workspaces/${id}`)).body;
      expect(ws).toMatchObject({ serverId: servers[1], status: i === 3 ? 'stopped' : 'running' });
      if (i === 3) expect((await h.call('POST', `/workspaces/${id}/start`, { token: h.userToken })).body.status).toBe('running');
      const c = h.deps.fleet.engine(localEngines()[1]).getContainer(ws.containerName);
      expect((await execIn(c, ['sh', '-c', SUMS])).stdout).toBe(sums.get(id));
    }
    const server = (await h.call('GET', `/servers/${servers[0]}`)).body;
    expect(server).toMatchObject({ status: 'drained', cordoned: true, reserved: { cpu: 0, memoryMb: 0, diskGb: 0 } });
    const list = h.client.workflow.list({ query: `WorkflowType = 'drainServerWorkflow' AND PodexServerId = '${servers[0]}'` });
    const found: string[] = [];
    for await (const wf of list) found.push(wf.workflowId);
    expect(found).toContain(started.body.workflowId);
    const history = await h.client.workflow.getHandle(started.body.workflowId).fetchHistory();
    maybeRecordHistory('drain-server-2', history);
    // This drain's own history replays: no step of it depended on when a child's completion arrived.
    await expect(Worker.runReplayHistory(replayOptions(), history, started.body.workflowId)).resolves.toBeUndefined();

    expect((await h.call('DELETE', `/servers/${servers[0]}`)).status).toBe(204);
    servers.shift();
  }, 400_000);

  async function workspacesOn(serverId: string, n: number, prefix: string): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, body: { name: `${prefix}-${i}`, tier: 'free', server: serverId, constraints: { labels: { suite } } } });
      expect(res.status).toBe(201);
      ids.push(res.body.workspace.id);
      workspaces.push(res.body.workspace.id);
    }
    return ids;
  }
  const drainDone = (serverId: string) =>
    eventually(async () => {
      const d = (await h.call('GET', `/servers/${serverId}/drain`)).body;
      return d.workflowStatus && d.workflowStatus !== 'RUNNING' ? d : undefined;
    }, 240_000, 300);

  it('at an abort deadline, rolls back what is in flight and puts the server back in service', async () => {
    // engine-1's record went with the drain above; it joins again as the target.
    servers.push(...(await registerEngines(h, 'drain', [0], { suite })));
    const [source, target] = [servers[0], servers[1]];
    const ids = await workspacesOn(source, 2, 'abort');
    const started = await h.call('POST', `/servers/${source}/drain`, { body: { deadline: new Date(Date.now() + 4_000).toISOString(), maxParallel: 1, onDeadline: 'abort' } });
    expect(started.status).toBe(202);
    const d = await drainDone(source);
    expect(d.phase).toBe('aborted');
    expect((await h.call('GET', `/servers/${source}`)).body).toMatchObject({ status: 'active', cordoned: false });
    expect(await h.deps.prisma.migration.count({ where: { sourceServerId: source } })).toBe(0);
    // Whatever was in flight at the deadline rolled back; a move that finished before it stays.
    expect(d.workspaces.some((w: { phase: string }) => w.phase !== 'moved')).toBe(true);
    const targetEngine = h.deps.fleet.engine(localEngines()[0]);
    for (const id of ids) {
      const ws = (await h.call('GET', `/workspaces/${id}`)).body;
      expect(ws.status).toBe('running');
      if (ws.serverId === source) await expect(targetEngine.getContainer(ws.containerName).inspect()).rejects.toMatchObject({ statusCode: 404 });
      else expect(ws.serverId).toBe(target);
    }
  }, 300_000);

  it('at a force deadline, moves what is left stopped', async () => {
    const [source, target] = [servers[0], servers[1]];
    const ids = (await h.deps.prisma.workspace.findMany({ where: { serverId: source, status: 'running', id: { in: workspaces } }, select: { id: true } })).map((w) => w.id);
    expect(ids.length).toBeGreaterThanOrEqual(1);
    // Started paused and held until the deadline, then released: what is left moves stopped.
    // Its history limit is set tiny, so the waiting drain continues as a new run on the way.
    const handle = await h.client.workflow.start(drainServerWorkflow, {
      taskQueue: h.taskQueue,
      workflowId: WORKFLOW_ID.drainServer(source),
      args: [{ serverId: source, deadline: new Date(Date.now() + 8_000).toISOString(), maxParallel: 1, onDeadline: 'force', paused: true, holdHealthyMs: 1_000, continueAsNewAfterEvents: 20 }],
    });
    await eventually(async () => ((await h.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).describe()).status.name === 'CONTINUED_AS_NEW' ? true : undefined), 60_000, 300);
    const carried = await eventually(async () => {
      const d = (await h.call('GET', `/servers/${source}/drain`)).body;
      return d.deadlinePassed ? d : undefined;
    }, 60_000, 300);
    // The new run took over what the old one knew: paused, cordoned, the same workspaces.
    expect(carried).toMatchObject({ paused: true, workflowStatus: 'RUNNING', phase: 'deadline-forcing' });
    expect(carried.workspaces.map((w: { workspaceId: string }) => w.workspaceId).sort()).toEqual([...ids].sort());
    expect((await h.call('GET', `/servers/${source}`)).body.cordoned).toBe(true);
    await h.call('POST', `/servers/${source}/drain/resume`);
    const d = await drainDone(source);
    expect(d.phase).toBe('drained');
    for (const id of ids) expect((await h.call('GET', `/workspaces/${id}`)).body).toMatchObject({ serverId: target, status: 'stopped' });
  }, 300_000);
});
