import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { heartbeatCacheKey } from '../activities/heartbeat';
import { ensureHeartbeatSchedule } from '../workers/schedules';
import { eventually, startHarness, type Harness } from './harness';
import { localEngines, uniq, withEngine3 } from './helpers';
import { maybeRecordHistory } from './temporal-env';

const STACK = path.join(__dirname, '..', 'deploy', 'local', 'stack.sh');
const INTERVAL_S = 1;
const THRESHOLD = 2;

// Engine 3 is the one the suite stops and starts.
describe('fleet heartbeat on a Temporal Schedule detects a dead engine and its return', () => {
  let h: Harness;
  let serverId: string;
  const scheduleId = uniq('heartbeat-test');

  beforeAll(async () => {
    h = await startHarness('heartbeat');
  });

  afterAll(async () => {
    try {
      await h.client.schedule.getHandle(scheduleId).delete().catch(() => undefined);
      execFileSync('bash', [STACK, 'engine-start', '3']);
      if (serverId) await h.deps.prisma.workspaceServer.deleteMany({ where: { id: serverId } });
    } finally {
      await h?.close();
    }
  });

  // Engine 3 is shared with the migration suite's kill test: the lock is held from onboarding to the end,
  // and the wait for it counts against this test's time.
  it('records usage each interval, marks the server unreachable within interval × K of its engine dying, and restores it', () =>
    withEngine3(async () => {
    const e = localEngines()[2];
    const res = await h.call('POST', '/servers', { body: { name: 'engine-3', hostname: `${uniq('hb')}.local`, ipAddress: e.host, dockerPort: e.port } });
    serverId = res.body.server.id;
    await eventually(async () => (await h.call('GET', `/servers/${serverId}`)).body.status === 'active', 60_000);
    await ensureHeartbeatSchedule(h.client, { taskQueue: h.taskQueue, intervalSeconds: INTERVAL_S, threshold: THRESHOLD, scheduleId, serverIds: [serverId] });
    const desc = await h.client.schedule.getHandle(scheduleId).describe();
    expect(desc.spec.intervals?.[0].every).toBe(INTERVAL_S * 1000);

    // A running workspace container, as provisioning labels them, is counted with its stats.
    const docker = h.deps.fleet.engine(localEngines()[2]);
    const workspaceId = uniq('hb-ws');
    const container = await docker.createContainer({
      name: workspaceId,
      Image: process.env.WORKSPACE_IMAGE,
      Cmd: ['sh', '-c', 'dd if=/dev/zero of=/dev/null bs=1M & sleep 300'],
      Labels: { 'podex.workspace_id': workspaceId, 'podex.managed': 'true', 'podex.test': '1' },
      HostConfig: { NetworkMode: 'none' },
    });
    try {
      await container.start();
      const first = await eventually(async () => {
        const s = (await h.call('GET', `/servers/${serverId}`)).body;
        // CPU is a delta between two heartbeats: the second one reports it.
        return s.lastHeartbeat && s.used.activeWorkspaces === 1 && s.used.cpu > 0 ? s : undefined;
      }, 15_000);
      expect(first.status).toBe('active');
      expect(first.used.cpu).toBeLessThanOrEqual(first.total.cpu);
      const cached = JSON.parse((await h.deps.redis.get(heartbeatCacheKey(serverId)))!);
      expect(cached).toMatchObject({ status: 'active', activeWorkspaces: 1 });
      expect(cached.containers).toEqual([{ name: workspaceId, workspaceId, cpu: expect.any(Number), memoryMb: expect.any(Number) }]);
      expect(cached.containers[0].cpu).toBeGreaterThan(0);
    } finally {
      await container.remove({ force: true });
    }
    const ttl = await h.deps.redis.ttl(heartbeatCacheKey(serverId));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(INTERVAL_S * THRESHOLD);

    const stoppedAt = Date.now();
    execFileSync('bash', [STACK, 'engine-stop', '3']);
    const down = await eventually(async () => {
      const s = (await h.call('GET', `/servers/${serverId}`)).body;
      return s.status === 'unreachable' ? s : undefined;
    }, 30_000, 100);
    const detectedMs = Date.now() - stoppedAt;
    // Bound: K missed rounds, plus the round in flight when the engine died, plus scheduling slack.
    expect(detectedMs).toBeLessThanOrEqual((THRESHOLD + 1) * INTERVAL_S * 1000 + 3000);
    expect(down.missedHeartbeats).toBeGreaterThanOrEqual(THRESHOLD);
    expect(down.lastError).toMatch(/heartbeat/);
    // The user list is cached for up to a second; within that the server drops out.
    await eventually(async () => {
      const avail = await h.call('GET', '/servers/available', { token: h.userToken });
      return !avail.body.servers.map((s: { id: string }) => s.id).includes(serverId);
    }, 3_000);

    execFileSync('bash', [STACK, 'engine-start', '3']);
    const back = await eventually(async () => {
      const s = (await h.call('GET', `/servers/${serverId}`)).body;
      return s.status === 'active' ? s : undefined;
    }, 30_000, 100);
    expect(back.missedHeartbeats).toBe(0);
    for await (const wf of h.client.workflow.list({ query: `WorkflowType = "fleetHeartbeatWorkflow" AND TaskQueue = "${h.taskQueue}" AND ExecutionStatus = "Completed"` })) {
      maybeRecordHistory('fleet-heartbeat', await h.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory());
      break;
    }
    process.stdout.write(`heartbeat: unreachable detected ${detectedMs} ms after the engine stopped (interval ${INTERVAL_S}s, K=${THRESHOLD})\n`);
    }),
  400_000);
});
