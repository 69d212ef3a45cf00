import { containerSpec, cpuLimit, hostPortsFrom, networkSpec, workspaceLabels, workspaceNames } from './container-spec';
import { TIERS } from './tiers';

describe('workspace container spec', () => {
  const id = '3f9b8c1e-1111-4222-8333-944455556666';
  const spec = containerSpec({ workspaceId: id, ownerId: 'u1', tier: TIERS.pro, image: 'podex/workspace:latest', runtime: 'runsc', diskLimitSupported: false, publishAddress: '10.0.0.5' });

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

  it("runs as the image's non-root user, never root", () => {
    expect(spec.User).toBe('1000:1000');
    const withUser = (imageUser?: string) => containerSpec({ workspaceId: id, ownerId: 'u1', tier: TIERS.pro, image: 'i', runtime: 'runsc', diskLimitSupported: false, publishAddress: '10.0.0.5', imageUser }).User;
    expect(withUser('dev:dev')).toBe('dev:dev');
    expect(withUser('1001')).toBe('1001');
    for (const root of ['', 'root', '0', '0:0', 'root:wheel']) expect(withUser(root)).toBe('1000:1000');
  });

  it("caps the CPU limit at the engine's real CPU count, which Docker would otherwise refuse", () => {
    const nano = (tier: keyof typeof TIERS, hostCpus?: number | null) =>
      containerSpec({ workspaceId: id, ownerId: 'u1', tier: TIERS[tier], image: 'i', runtime: 'runsc', diskLimitSupported: false, publishAddress: '10.0.0.5', hostCpus }).HostConfig.NanoCpus;
    // A 4-CPU tier on a 2-CPU engine that declares more capacity: the whole machine.
    expect(nano('power', 2)).toBe(2e9);
    expect(nano('pro', 2)).toBe(2e9);
    expect(nano('free', 2)).toBe(1e9);
    expect(nano('power', 16)).toBe(4e9);
    // Unknown (a server onboarded before the count was recorded): the tier's figure, as before.
    expect(nano('power', null)).toBe(4e9);
    expect(nano('power')).toBe(4e9);
    expect(cpuLimit(4, 2)).toBe(2);
    expect(cpuLimit(1, 0)).toBe(1);
  });

  it('sets a disk limit only where the storage driver can enforce it', () => {
    expect('StorageOpt' in spec.HostConfig).toBe(false);
    const xfs = containerSpec({ workspaceId: id, ownerId: 'u1', tier: TIERS.pro, image: 'i', runtime: 'runsc', diskLimitSupported: true, publishAddress: '10.0.0.5' });
    expect(xfs.HostConfig.StorageOpt).toEqual({ size: '20G' });
  });

  it('labels and isolates the network', () => {
    const net = networkSpec(id, workspaceLabels(id, 'u1', 'pro'));
    expect(net.Options).toEqual({ 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.enable_ip_masquerade': 'true' });
    expect(net.Labels).toMatchObject({ 'podex.workspace_id': id, 'podex.managed': 'true' });
  });

  it('publishes the IDE, SSH when the image has it, and each preview port on the private address alone', () => {
    expect(spec.HostConfig.PortBindings).toEqual({ '8080/tcp': [{ HostIp: '10.0.0.5', HostPort: '' }] });
    const full = containerSpec({ workspaceId: id, ownerId: 'u1', tier: TIERS.pro, image: 'i', runtime: 'runsc', diskLimitSupported: false, publishAddress: '10.0.0.5', ssh: true, previewPorts: [3000, 5173] });
    expect(Object.keys(full.HostConfig.PortBindings).sort()).toEqual(['22/tcp', '3000/tcp', '5173/tcp', '8080/tcp']);
    expect(Object.keys(full.ExposedPorts).sort()).toEqual(['22/tcp', '3000/tcp', '5173/tcp', '8080/tcp']);
    for (const b of Object.values(full.HostConfig.PortBindings)) expect(b).toEqual([{ HostIp: '10.0.0.5', HostPort: '' }]);
  });

  it('reads the host ports Docker chose on the publish address', () => {
    const ports = {
      '8080/tcp': [{ HostIp: '10.0.0.5', HostPort: '49153' }],
      '22/tcp': [{ HostIp: '10.0.0.5', HostPort: '49154' }],
      '3000/tcp': [{ HostIp: '0.0.0.0', HostPort: '40000' }, { HostIp: '10.0.0.5', HostPort: '49155' }],
      '5173/tcp': null,
      '53/udp': [{ HostIp: '10.0.0.5', HostPort: '5353' }],
    };
    expect(hostPortsFrom(ports, '10.0.0.5')).toEqual({ httpPort: 49153, sshPort: 49154, publishedPorts: { '3000': 49155 } });
    expect(hostPortsFrom(undefined, '10.0.0.5')).toEqual({ httpPort: null, sshPort: null, publishedPorts: {} });
  });
});
