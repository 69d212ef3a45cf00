import { MockActivityEnvironment } from '@temporalio/testing';
import { createWorkspaceDockerActivities } from '../activities/workspace-docker';
import { networkSpec, workspaceLabels, workspaceNames } from '../domain/container-spec';
import { TIERS } from '../domain/tiers';
import { config } from '../lib/config';
import { toolsImage } from '../lib/tools-image';
import { localEngines, testFleet, uniq } from './helpers';

/** Docker steps that must stay idempotent when an engine is too busy to answer in time. */
describe('workspace networks on a busy engine', () => {
  const fleet = testFleet();
  const endpoint = localEngines()[0];
  const docker = fleet.engine(endpoint);
  const acts = createWorkspaceDockerActivities({ fleet, tools: toolsImage(config()) });
  const id = uniq('twins');
  const name = workspaceNames(id).network;
  const named = async () => (await docker.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);

  afterAll(async () => {
    await docker.getContainer(workspaceNames(id).container).remove({ force: true }).catch(() => undefined);
    for (const n of await named()) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  });

  it('keeps one network when two creates in flight at once both succeeded, and removes every twin', async () => {
    // Two creates that pass the engine's duplicate check together, as a timed-out attempt and its retry can.
    const spec = { ...networkSpec(id, { ...workspaceLabels(id, 'test-user', 'free'), 'podex.test': '1' }), CheckDuplicate: false };
    const first = await docker.createNetwork(spec);
    await docker.createNetwork(spec);
    expect(await named()).toHaveLength(2);
    await expect(docker.getNetwork(name).inspect()).rejects.toThrow(/ambiguous/);

    expect(await acts.ensureNetwork(endpoint, id, 'test-user', 'free')).toBe(false);
    const left = await named();
    expect(left.map((n) => n.Id)).toEqual([first.id]);
    expect((await docker.getNetwork(name).inspect()).Id).toBe(first.id);

    await docker.createNetwork(spec);
    expect(await acts.removeNetwork(endpoint, id)).toBe(true);
    expect(await named()).toHaveLength(0);
    expect(await acts.removeNetwork(endpoint, id)).toBe(false);
  }, 60_000);

  it('a workspace whose network got a twin after the network step looked still starts, on the oldest', async () => {
    const spec = { ...networkSpec(id, { ...workspaceLabels(id, 'test-user', 'free'), 'podex.test': '1' }), CheckDuplicate: false };
    const first = await docker.createNetwork(spec);
    const containerId = await acts.ensureContainer(endpoint, { workspaceId: id, ownerId: 'test-user', tier: TIERS.free, image: config().WORKSPACE_IMAGE, runtime: 'runc', diskLimitSupported: false, publishAddress: '127.0.0.1' });
    await docker.createNetwork(spec);
    await expect(docker.getContainer(containerId).start()).rejects.toThrow(/ambiguous/);
    await new MockActivityEnvironment().run(acts.startAndWaitReady, endpoint, id);
    expect((await named()).map((n) => n.Id)).toEqual([first.id]);
    expect(Object.values((await docker.getContainer(containerId).inspect()).NetworkSettings.Networks).map((n) => n.NetworkID)).toEqual([first.id]);
  }, 60_000);
});
