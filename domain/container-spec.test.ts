import { containerSpec, networkSpec, workspaceLabels, workspaceNames } from './container-spec';
import { TIERS } from './tiers';

describe('workspace container spec', () => {
  const id = '3f9b8c1e-1111-4222-8333-944455556666';
  const spec = containerSpec({ workspaceId: id, ownerId: 'u1', tier: TIERS.pro, image: 'podex/workspace:latest', runtime: 'runsc', diskLimitSupported: false });

  it('names everything after the workspace id', () => {
    expect(workspaceNames(id)).toEqual({ container: `podex-ws-${id}`, network: `podex-ws-${id}`, volume: `podex-ws-${id}` });
    expect(spec.name).toBe(`podex-ws-${id}`);
    expect(spec.HostConfig.NetworkMode).toBe(`podex-ws-${id}`);
    expect(spec.HostConfig.Mounts).toEqual([{ Type: 'volume', Source: `podex-ws-${id}`, Target: '/workspace' }]);
  });

  it('is hardened as the seed specifies', () => {
    expect(spec.HostConfig).toMatchObject({
      Runtime: 'runsc',
      CapDrop: ['ALL'],
      CapAdd: ['CHOWN', 'SETUID', 'SETGID', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'NET_BIND_SERVICE'],
      SecurityOpt: ['no-new-privileges:true'],
      PidsLimit: 500,
      NanoCpus: 2e9,
      Memory: 4096 * 1024 * 1024,
      MemorySwap: 4096 * 1024 * 1024,
      Tmpfs: { '/tmp': 'rw,nosuid,size=1g,mode=1777', '/run': 'rw,nosuid,size=100m,mode=755' },
    });
    expect(spec.HostConfig.SecurityOpt.join()).not.toMatch(/unconfined/);
  });

  it('sets a disk limit only where the storage driver can enforce it', () => {
    expect('StorageOpt' in spec.HostConfig).toBe(false);
    const xfs = containerSpec({ workspaceId: id, ownerId: 'u1', tier: TIERS.pro, image: 'i', runtime: 'runsc', diskLimitSupported: true });
    expect(xfs.HostConfig.StorageOpt).toEqual({ size: '20G' });
  });

  it('labels and isolates the network', () => {
    const net = networkSpec(id, workspaceLabels(id, 'u1', 'pro'));
    expect(net.Options).toEqual({ 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.enable_ip_masquerade': 'true' });
    expect(net.Labels).toMatchObject({ 'podex.workspace_id': id, 'podex.managed': 'true' });
  });
});
