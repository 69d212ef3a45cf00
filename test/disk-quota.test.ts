import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createDockerActivities } from '../activities/docker';
import { createWorkspaceDockerActivities } from '../activities/workspace-docker';
import { workspaceNames } from '../domain/container-spec';
import { TIERS } from '../domain/tiers';
import { config } from '../lib/config';
import { toolsImage } from '../lib/tools-image';
import { execIn, localEngines, loopBackingFiles, testFleet, uniq } from './helpers';

/** Whether no loop device is backed by `image` within 5 s: the kernel frees an auto-clear device after the unmount, not with it. */
async function released(image: string): Promise<boolean> {
  for (const end = Date.now() + 5_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    if (!loopBackingFiles().includes(image)) return true;
  }
  return !loopBackingFiles().includes(image);
}

const MIB = 1 << 20;

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
    expect(await released(image)).toBe(true);
    expect(fs.existsSync(image)).toBe(false);

    // dockerd's own size option gives a name made again no quota (moby#43891): ours does.
    await acts.ensureVolume(endpoint, a, 'test-user', 'free', 'disk-quota-test', 64 * MIB);
    expect(loopBackingFiles()).toContain(image);
    await acts.removeVolume(endpoint, a);
    expect(await released(image)).toBe(true);
  }, 30_000);

  it('onboarding requires a server that can give volumes a disk, and its probe leaves no disk behind', async () => {
    const probe = uniq('podex-test-audit');
    const audit = await createDockerActivities({ fleet, tools: toolsImage(config()) }).auditDaemon(endpoint, config().WORKSPACE_IMAGE, probe);
    expect(audit.findings.find((f) => f.check === 'volume disk limits')).toMatchObject({ required: true, ok: true });
    await expect(docker.getVolume(`${probe}-disk`).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(loopBackingFiles().filter((f) => f.includes(probe))).toEqual([]);
  }, 60_000);
});

/** Finding 5, the servers' side: disks come back after a reboot before Docker starts, and a server without loop devices is refused. */
describe('volume disks outside the engine', () => {
  const ROOT = path.join(__dirname, '..');
  const read = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');
  const bash = (script: string, env: Record<string, string> = {}) => spawnSync('bash', ['-c', script], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  let tmp: string;

  /** A volume folder as an engine leaves it after a reboot: its disk image beside an empty, immutable _data. */
  function volumeWithDisk(volumes: string, name: string): { data: string; image: string } {
    const data = path.join(volumes, name, '_data');
    const image = path.join(volumes, name, 'disk.img');
    fs.mkdirSync(data, { recursive: true });
    execFileSync('truncate', ['-s', String(16 * MIB), image]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
    execFileSync('chattr', ['+i', data]);
    return { data, image };
  }
  const mounted = (d: string) => spawnSync('mountpoint', ['-q', d]).status === 0;
  const fill = (d: string) => spawnSync('dd', ['if=/dev/zero', `of=${d}/big`, 'bs=1M', 'count=32'], { encoding: 'utf8' });

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-disks-'));
  });
  afterEach(() => {
    for (const d of spawnSync('sh', ['-c', `grep -o ' ${tmp}[^ ]*' /proc/self/mounts`], { encoding: 'utf8' }).stdout.split('\n').map((s) => s.trim()).filter(Boolean)) spawnSync('umount', ['-l', d]);
    spawnSync('sh', ['-c', `find ${tmp} -name _data -exec chattr -i {} +`]);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('stack.sh mounts every engine volume disk before dockerd starts, and down --purge releases them', async () => {
    const stack = read('deploy/local/stack.sh');
    const fn = (name: string) => stack.match(new RegExp(`^${name}\\(\\) \\{[\\s\\S]*?^\\}`, 'm'))![0];
    const start = fn('engine_start_dockerd');
    expect(start.indexOf('engine_mount_disks "$i"')).toBeGreaterThan(-1);
    expect(start.indexOf('engine_mount_disks "$i"')).toBeLessThan(start.indexOf('dockerd '));
    const down = stack.slice(stack.indexOf('  down)'));
    expect(down.indexOf('engine_unmount_disks')).toBeLessThan(down.indexOf('rm -rf "$STACK_DIR/engines"'));

    const disk = volumeWithDisk(path.join(tmp, 'engines', 'engine-1', 'data', 'volumes'), 'podex-ws-x');
    const env = { PODEX_STACK_DIR: tmp };
    const run = (call: string) => bash(`source deploy/local/lib.sh; ${fn('engine_mount_disks')}; ${fn('engine_unmount_disks')}; ${call}`, env);
    // Unmounted, the immutable folder refuses writes: never an unlimited volume.
    expect(fill(disk.data).stderr).toMatch(/Operation not permitted/);
    // A disk still attached elsewhere (a mount a stopped daemon detached while a container holds it) is never mounted twice.
    const other = volumeWithDisk(path.join(tmp, 'engines', 'engine-1', 'data', 'volumes'), 'podex-ws-held');
    const held = execFileSync('losetup', ['-f', '--show', other.image], { encoding: 'utf8' }).trim();
    try {
      const first = run('engine_mount_disks 1');
      expect(first).toMatchObject({ status: 0 });
      expect(first.stderr).toContain(`disk of ${other.data} is still attached elsewhere`);
      expect(mounted(other.data)).toBe(false);
    } finally {
      execFileSync('losetup', ['-d', held]);
    }
    // The data root is a shared mount point of its own before dockerd starts, so dockerd makes no
    // bind of its own over the disks (nor detaches them with it when it stops).
    const data = path.join(tmp, 'engines', 'engine-1', 'data');
    expect(mounted(data)).toBe(true);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === data)).toMatch(/ shared:\d+/);
    expect(mounted(disk.data)).toBe(true);
    expect(loopBackingFiles()).toContain(disk.image);
    expect(fill(disk.data).stderr).toMatch(/No space left on device/);
    // Made again when already mounted: nothing changes.
    expect(run('engine_mount_disks 1')).toMatchObject({ status: 0 });
    expect(loopBackingFiles().filter((f) => f === disk.image)).toHaveLength(1);
    expect(run('engine_unmount_disks 1')).toMatchObject({ status: 0 });
    expect(mounted(disk.data)).toBe(false);
    expect(mounted(data)).toBe(false);
    expect(await released(disk.image)).toBe(true);
    fs.rmSync(path.join(tmp, 'engines'), { recursive: true });
  });

  it('stack.sh: a disk mounted before the data root had a mount of its own stays usable, and down --purge still releases it', async () => {
    const stack = read('deploy/local/stack.sh');
    const fn = (name: string) => stack.match(new RegExp(`^${name}\\(\\) \\{[\\s\\S]*?^\\}`, 'm'))![0];
    const run = (call: string) => bash(`source deploy/local/lib.sh; ${fn('engine_mount_disks')}; ${fn('engine_unmount_disks')}; ${call}`, { PODEX_STACK_DIR: tmp });
    const disk = volumeWithDisk(path.join(tmp, 'engines', 'engine-1', 'data', 'volumes'), 'podex-ws-early');
    // As an engine started before this stack.sh left it: the disk mounted straight on the folder.
    execFileSync('mount', ['-o', 'loop', disk.image, disk.data]);
    expect(run('engine_mount_disks 1')).toMatchObject({ status: 0, stderr: '' });
    expect(mounted(disk.data)).toBe(true);
    expect(fill(disk.data).stderr).toMatch(/No space left on device/);
    expect(loopBackingFiles().filter((f) => f === disk.image)).toHaveLength(1);
    expect(run('engine_unmount_disks 1')).toMatchObject({ status: 0 });
    expect(await released(disk.image)).toBe(true);
    fs.rmSync(path.join(tmp, 'engines'), { recursive: true });
  });

  it('the workspace bootstrap installs the tools, stops without a loop device, and its unit mounts the disks before Docker', () => {
    const boot = read('deploy/servers/workspace/bootstrap.sh');
    expect(boot).toMatch(/^apt_install e2fsprogs mount util-linux$/m);
    expect(boot).toMatch(/^losetup -f >\/dev\/null \|\| \{ log "[^"]+"; exit 1; \}$/m);
    const unit = boot.match(/podex-volume-disks\.service <<'UNIT'; then\n([\s\S]*?)\nUNIT\n/)![1];
    expect(unit).toMatch(/^Before=docker\.service$/m);
    expect(unit).toMatch(/^WantedBy=.*\bdocker\.service\b/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/sbin\/podex-volume-disks$/m);
    expect(boot).toMatch(/^systemctl enable podex-volume-disks\.service$/m);
    // Docker itself starts after the unit is in place.
    expect(boot.indexOf('systemctl enable podex-volume-disks.service')).toBeLessThan(boot.indexOf('systemctl enable --now docker'));

    // The unit's script, run on a copy of /var/lib/docker, mounts each disk once.
    const script = boot.match(/podex-volume-disks <<'SH' \|\| true\n([\s\S]*?)\nSH\n/)![1].replaceAll('/var/lib/docker', tmp);
    const disks = [volumeWithDisk(path.join(tmp, 'volumes'), 'podex-ws-a'), volumeWithDisk(path.join(tmp, 'volumes'), 'podex-ws-b')];
    fs.mkdirSync(path.join(tmp, 'volumes', 'plain', '_data'), { recursive: true });
    for (let i = 0; i < 2; i++) expect(spawnSync('sh', ['-c', script], { encoding: 'utf8' })).toMatchObject({ status: 0, stderr: '' });
    for (const d of disks) {
      expect(mounted(d.data)).toBe(true);
      expect(loopBackingFiles().filter((f) => f === d.image)).toHaveLength(1);
      execFileSync('umount', [d.data]);
    }
    expect(mounted(path.join(tmp, 'volumes', 'plain', '_data'))).toBe(false);
  });

  it('setup.sh installs the tools and refuses a machine that lacks them', () => {
    const setup = read('deploy/local/setup.sh');
    expect(setup).toMatch(/^APT_PKGS=\(.* e2fsprogs mount util-linux .*\)$/m);
    const part = setup.match(/# --- workspace volume disks -+\n([\s\S]*?)\n# --- /)![1];
    expect(bash(`source deploy/local/lib.sh\n${part}\necho checked`)).toMatchObject({ status: 0, stdout: 'checked\n' });
    const without = bash(`source deploy/local/lib.sh\nPATH=${tmp}\n${part}\necho checked`);
    expect(without).toMatchObject({ status: 1, stdout: '' });
    expect(without.stderr).toMatch(/mkfs\.ext4 is missing: workspace disk limits need e2fsprogs/);
  });
});
