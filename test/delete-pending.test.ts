import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { WORKFLOW_ID } from '../lib/constants';
import { registerEngines, startHarness, type Harness } from './harness';
import { localEngines, spawnWorker, uniq } from './helpers';

/**
 * A workspace deleted while still pending (its workflow not yet run: no worker, or a queue behind)
 * stays deleted when the workflow does run: provisioning makes nothing for it.
 */
describe('deleting a pending workspace', () => {
  let h: Harness;
  let worker: ChildProcess | undefined;
  const suite = uniq('delpend');
  const servers: string[] = [];
  const workspaces: string[] = [];

  const stopWorker = async () => {
    if (!worker || worker.exitCode !== null) return;
    const exited = once(worker, 'exit');
    worker.kill('SIGTERM');
    await exited;
  };

  beforeAll(async () => {
    h = await startHarness('delpend', {}, { inProcessWorker: false });
    worker = await spawnWorker(h.taskQueue);
    servers.push(...(await registerEngines(h, 'delpend', [0], { suite })));
    await stopWorker();
  }, 120_000);

  afterAll(async () => {
    await stopWorker();
    await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    await h.close();
  });

  it('is never provisioned once a worker takes its workflow', async () => {
    const created = await h.call('POST', '/workspaces', { token: h.userToken, body: { name: 'gone-early', tier: 'free', constraints: { labels: { suite } } } });
    expect(created.status).toBe(202);
    const id: string = created.body.workspace.id;
    workspaces.push(id);
    expect(created.body.workspace.status).toBe('pending');
    expect((await h.call('DELETE', `/workspaces/${id}`, { token: h.userToken })).status).toBe(204);

    worker = await spawnWorker(h.taskQueue);
    const handle = h.client.workflow.getHandle(WORKFLOW_ID.workspace(id));
    await expect(handle.result()).rejects.toThrow();
    const row = await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id } });
    expect(row.status).toBe('deleted');
    expect(row.serverId).toBeNull();
    const engine = h.deps.fleet.engine(localEngines()[0]);
    const containers = await engine.listContainers({ all: true, filters: { label: [`podex.workspace_id=${id}`] } });
    expect(containers).toEqual([]);
    const volumes = await engine.listVolumes({ filters: { label: [`podex.workspace_id=${id}`] } });
    expect(volumes.Volumes ?? []).toEqual([]);
  }, 120_000);
});
