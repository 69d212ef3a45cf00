import fs from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createWorkspaceDockerActivities } from '../activities/workspace-docker';
import { workspaceNames } from '../domain/container-spec';
import { TIERS } from '../domain/tiers';
import { config } from '../lib/config';
import { toolsImage } from '../lib/tools-image';
import { execIn, localEngines, testFleet, uniq } from './helpers';

const MIB = 1 << 20;

/** Files the host's loop devices are backed by (the local engines run on this host). */
function loopBackingFiles(): string[] {
  return fs
    .readdirSync('/sys/block')
    .filter((d) => d.startsWith('loop'))
    .map((d) => {
      try {
        return fs.readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
      } catch {
        return '';
      }
    })
    .filter(Boolean);
}

/** Finding 5: a workspace's /workspace is limited to its tier's disk size, on the server, for real. */
describe('workspace disk limit', () => {
  const fleet = testFleet();
  const endpoint = localEngines()[0];
  const docker = fleet.engine(endpoint);
  const acts = createWorkspaceDockerActivities({ fleet, tools: toolsImage(config()) });
  const env = new MockActivityEnvironment();
  const ids = [uniq('disk-a'), uniq('disk-b')];
  const tier = { ...TIERS.free, cpu: 0.5, memoryMb: 256 };

  beforeAll(async () => {
    // A server without loop devices or mkfs.ext4 fails here, loudly (VolumeDiskUnsupported), never silently unlimited.
    for (const id of ids) {
      await acts.ensureNetwork(endpoint, id, 'test-user', 'free');
      await acts.ensureVolume(endpoint, id, 'test-user', 'free', 'disk-quota-test', 64 * MIB);
      await acts.ensureContainer(endpoint, { workspaceId: id, ownerId: 'test-user', tier, image: config().WORKSPACE_IMAGE, runtime: 'runsc', diskLimitSupported: false, publishAddress: '127.0.0.1' });
    }
    await Promise.all(ids.map((id) => env.run(acts.startAndWaitReady, endpoint, id)));
  }, 60_000);

  afterAll(async () => {
    for (const id of ids) await acts.removeWorkspaceResources(endpoint, id).catch(() => undefined);
  }, 30_000);

  const sh = (id: string, script: string) => execIn(docker.getContainer(workspaceNames(id).container), ['sh', '-c', script]);

  it('a write past the limit fails with ENOSPC inside the workspace while the neighbour keeps writing', async () => {
    const [a, b] = ids;
    const df = await sh(a, 'df -k /workspace | tail -n 1');
    expect(Number(df.stdout.trim().split(/\s+/)[1]) * 1024).toBeLessThanOrEqual(64 * MIB);

    const big = await sh(a, 'dd if=/dev/zero of=/workspace/big bs=1M count=100 conv=fsync 2>&1; echo "exit=$?"; wc -c </workspace/big');
    expect(big.out).toMatch(/No space left on device/);
    expect(big.out).not.toMatch(/exit=0/);
    const written = Number(big.stdout.trim().split('\n').pop());
    expect(written).toBeGreaterThan(32 * MIB);
    expect(written).toBeLessThan(64 * MIB);

    // The neighbour on the same server still writes, and a full workspace fills nothing of the server's.
    const small = await sh(b, 'dd if=/dev/zero of=/workspace/ten bs=1M count=10 conv=fsync 2>&1; echo "exit=$?"; wc -c </workspace/ten');
    expect(small.out).toMatch(/exit=0/);
    expect(small.stdout.trim().split('\n').pop()).toBe(String(10 * MIB));
    // The full one can free space and write again.
    const again = await sh(a, 'rm /workspace/big && dd if=/dev/zero of=/workspace/again bs=1M count=10 conv=fsync 2>&1; echo "exit=$?"');
    expect(again.out).toMatch(/exit=0/);
  }, 60_000);

  it('removing the workspace releases its disk, and a volume made again under the same name is limited again', async () => {
    const [a] = ids;
    const { Mountpoint } = await docker.getVolume(workspaceNames(a).volume).inspect();
    const image = Mountpoint.replace(/\/_data$/, '/disk.img');
    expect(loopBackingFiles()).toContain(image);
    await acts.removeWorkspaceResources(endpoint, a);
    await expect(docker.getVolume(workspaceNames(a).volume).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(loopBackingFiles()).not.toContain(image);
    expect(fs.existsSync(image)).toBe(false);

    // dockerd's own size option gives a name made again no quota (moby#43891): ours does.
    await acts.ensureVolume(endpoint, a, 'test-user', 'free', 'disk-quota-test', 64 * MIB);
    expect(loopBackingFiles()).toContain(image);
    await acts.removeVolume(endpoint, a);
    expect(loopBackingFiles()).not.toContain(image);
  }, 30_000);
});
