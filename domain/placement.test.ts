import { place, withDetail, type Candidate, type PlacementRequest } from './placement';

const server = (name: string, over: Partial<Candidate> = {}): Candidate => ({
  id: `id-${name}`,
  name,
  status: 'active',
  cordoned: false,
  inMaintenance: false,
  architecture: 'amd64',
  region: 'eu',
  labels: {},
  hasGpu: false,
  gpuType: null,
  gpuCount: 0,
  total: { cpu: 8, memoryMb: 16384, diskGb: 200 },
  reserved: { cpu: 0, memoryMb: 0, diskGb: 0 },
  ...over,
});
const req = (over: Partial<PlacementRequest> = {}): PlacementRequest => ({
  need: { cpu: 1, memoryMb: 1024, diskGb: 5 },
  strategy: 'SPREAD',
  overcommit: 1,
  ...over,
});
const names = (p: ReturnType<typeof place>) => (p.ok ? p.ranked.map((s) => s.name) : p.reason);

describe('placement strategies', () => {
  const busy = server('busy', { reserved: { cpu: 6, memoryMb: 4096, diskGb: 20 } });
  const idle = server('idle');
  const half = server('half', { reserved: { cpu: 4, memoryMb: 8192, diskGb: 50 } });

  it('SPREAD picks the least loaded server first', () => {
    expect(names(place([busy, idle, half], req()))).toEqual(['idle', 'half', 'busy']);
  });

  it('BEST_FIT packs the fullest server that still fits', () => {
    expect(names(place([busy, idle, half], req({ strategy: 'BEST_FIT' })))).toEqual(['busy', 'half', 'idle']);
    // busy has 2 CPUs free: a 4-CPU request skips it.
    expect(names(place([busy, idle, half], req({ strategy: 'BEST_FIT', need: { cpu: 4, memoryMb: 1024, diskGb: 5 } })))).toEqual(['half', 'idle']);
  });

  it('AFFINITY prefers the servers of the user’s other workspaces, then spreads', () => {
    expect(names(place([busy, idle, half], req({ strategy: 'AFFINITY', affinity: ['id-half'] })))).toEqual(['half', 'idle', 'busy']);
    const full = server('full', { reserved: { cpu: 8, memoryMb: 0, diskGb: 0 } });
    expect(names(place([full, idle], req({ strategy: 'AFFINITY', affinity: ['id-full'] })))).toEqual(['idle']);
  });

  it('a server the user named is the only candidate', () => {
    expect(names(place([busy, idle, half], req({ serverId: 'id-half' })))).toEqual(['half']);
    const p = place([busy, idle, half], req({ serverId: 'id-nope' }));
    expect(p.ok).toBe(false);
  });
});

describe('placement constraints', () => {
  it('excludes unhealthy, cordoned and maintenance servers and says why', () => {
    const p = place(
      [
        server('down', { status: 'unreachable' }),
        server('cordoned', { cordoned: true }),
        server('maint', { inMaintenance: true }),
        server('draining', { status: 'draining' }),
      ],
      req(),
    );
    expect(p).toEqual({
      ok: false,
      reason: 'no capacity: no server can take this workspace',
      detail: expect.stringMatching(/down: status unreachable.*cordoned: cordoned.*maint: in maintenance.*draining: status draining/),
      excluded: { down: ['status unreachable'], cordoned: ['cordoned'], maint: ['in maintenance'], draining: ['status draining'] },
    });
  });

  it('keeps server names out of the reason a user may read; the detail names them for operators', () => {
    const p = place([server('gpu-box-7.fleet.internal', { cordoned: true }), server('10.0.0.9', { status: 'draining' })], req());
    if (p.ok) throw new Error('placed');
    expect(p.reason).not.toMatch(/gpu-box|10\.0\.0\.9|cordoned|draining/);
    expect(withDetail(p)).toMatch(/^no capacity: no server can take this workspace \(gpu-box-7\.fleet\.internal: cordoned; 10\.0\.0\.9: status draining\)$/);
    const pinned = place([server('a')], req({ serverId: 'not-registered' }));
    expect(pinned.ok || pinned.reason).toBe('no capacity: the chosen server is not available');
  });

  it('matches architecture, region and labels', () => {
    const arm = server('arm', { architecture: 'arm64', region: 'us', labels: { disk: 'nvme' } });
    const x86 = server('x86');
    expect(names(place([arm, x86], req({ architecture: 'arm64' })))).toEqual(['arm']);
    expect(names(place([arm, x86], req({ region: 'eu' })))).toEqual(['x86']);
    expect(names(place([arm, x86], req({ labels: { disk: 'nvme' } })))).toEqual(['arm']);
    const none = place([arm, x86], req({ labels: { disk: 'ssd' } }));
    expect(none.ok || none.excluded).toEqual({ arm: ['label disk=ssd missing'], x86: ['label disk=ssd missing'] });
  });

  it('matches GPU presence, count and type', () => {
    const a100 = server('a100', { hasGpu: true, gpuType: 'a100', gpuCount: 2 });
    const t4 = server('t4', { hasGpu: true, gpuType: 't4', gpuCount: 1 });
    const cpu = server('cpu');
    expect(names(place([a100, t4, cpu], req({ gpu: { count: 1 } })))).toEqual(['a100', 't4']);
    expect(names(place([a100, t4, cpu], req({ gpu: { count: 2 } })))).toEqual(['a100']);
    expect(names(place([a100, t4, cpu], req({ gpu: { type: 't4', count: 1 } })))).toEqual(['t4']);
  });

  it('respects capacity with the overcommit ratio', () => {
    const nearlyFull = server('nf', { total: { cpu: 2, memoryMb: 2048, diskGb: 10 }, reserved: { cpu: 2, memoryMb: 1024, diskGb: 5 } });
    expect(place([nearlyFull], req()).ok).toBe(false);
    expect(names(place([nearlyFull], req({ overcommit: 1.5 })))).toEqual(['nf']);
    const p = place([nearlyFull], req());
    expect(p.ok || p.excluded).toEqual({ nf: ['no capacity for the tier'] });
  });
});

describe('placement for a migration', () => {
  it('never chooses a server the request avoids, and says why it was excluded', () => {
    const a = server('a');
    const b = server('b', { reserved: { cpu: 6, memoryMb: 0, diskGb: 0 } });
    expect(names(place([a, b], req({ avoid: ['id-a'] })))).toEqual(['b']);
    const none = place([a], req({ avoid: ['id-a'] }));
    expect(none.ok || none.excluded).toEqual({ a: ['the workspace is moving away from it'] });
  });
});
