import { temporal } from '@temporalio/proto';
import { WORKFLOW_ID } from '../lib/constants';
import { onboardingProgressQuery } from '../workflows/onboard-server';
import { eventually, startHarness, type Harness } from './harness';
import { localEngines, uniq } from './helpers';
import { maybeRecordHistory } from './temporal-env';

describe('maintenance windows', () => {
  let h: Harness;
  let serverId: string;

  beforeAll(async () => {
    h = await startHarness('maintenance');
    const e = localEngines()[0];
    const res = await h.call('POST', '/servers', { body: { name: 'engine-1', hostname: `${uniq('mw')}.local`, ipAddress: e.host, dockerPort: e.port } });
    serverId = res.body.server.id;
    await eventually(async () => (await h.call('GET', `/servers/${serverId}`)).body.onboarding?.status === 'COMPLETED', 60_000);
  });
  afterAll(async () => {
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: serverId } });
    await h.close();
  });

  it('a workflow step aimed at a server in maintenance waits on a durable timer and completes after the window', async () => {
    const endsAt = new Date(Date.now() + 6_000);
    const w = await h.call('POST', `/servers/${serverId}/maintenance`, { body: { endsAt: endsAt.toISOString(), reason: 'test window' } });
    expect(w.status).toBe(201);

    const started = await h.call('POST', `/servers/${serverId}/onboard`);
    expect(started.status).toBe(202);
    const handle = h.client.workflow.getHandle(WORKFLOW_ID.onboardServer(serverId), started.body.onboarding.runId);

    const progress = await eventually(async () => {
      const p = await handle.query(onboardingProgressQuery);
      return p.phase === 'waiting-for-maintenance' ? p : undefined;
    });
    expect(Date.parse(progress.waitingForMaintenanceUntil!)).toBe(endsAt.getTime());
    // The wait is a timer on the server, visible in the Temporal UI.
    const history = await handle.fetchHistory();
    const timers = (history.events ?? []).filter((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_TIMER_STARTED);
    expect(timers.length).toBe(1);
    const unavailable = await h.call('GET', '/servers/available', { token: h.userToken });
    expect(unavailable.body.servers.map((s: { id: string }) => s.id)).not.toContain(serverId);

    const result = await handle.result();
    expect(result.status).toBe('active');
    expect(Date.now()).toBeGreaterThanOrEqual(endsAt.getTime());
    const closed = await handle.describe();
    expect(closed.status.name).toBe('COMPLETED');
    maybeRecordHistory('onboard-server-maintenance', await handle.fetchHistory());
    await eventually(async () => (await h.call('GET', '/servers/available', { token: h.userToken })).body.servers.map((s: { id: string }) => s.id).includes(serverId), 3_000);
  });
});
