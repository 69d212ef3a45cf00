import { place, REFUSAL_REASON, refusalKind, withDetail, type Candidate, type PlacementRequest } from './placement';
import { candidate as server } from './placement-fixtures';

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
      kind: 'not_now',
      fields: [],
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
    expect(pinned.ok || pinned.reason).toBe('unsatisfiable: the chosen server does not exist');
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

describe('whether a refusal could ever be met', () => {
  const refusal = (servers: Candidate[], r: Partial<PlacementRequest>) => {
    const p = place(servers, req(r));
    if (p.ok) throw new Error(`placed on ${p.ranked.map((s) => s.name).join(', ')}`);
    return p;
  };
  const verdict = (servers: Candidate[], r: Partial<PlacementRequest>) => {
    const p = refusal(servers, r);
    return { kind: p.kind, fields: p.fields.map((f) => f.field) };
  };
  const arm = server('arm', { architecture: 'arm64', region: 'us', labels: { disk: 'nvme' } });
  const x86 = server('x86', { labels: { disk: 'ssd' } });

  it('a label, region, architecture or GPU no server has is impossible, naming each such field', () => {
    expect(verdict([arm, x86], { labels: { disk: 'hdd' } })).toEqual({ kind: 'impossible', fields: ['constraints.labels.disk'] });
    expect(verdict([arm, x86], { region: 'ap', architecture: 'arm64' })).toEqual({ kind: 'impossible', fields: ['constraints.region'] });
    expect(verdict([x86], { architecture: 'arm64' })).toEqual({ kind: 'impossible', fields: ['constraints.architecture'] });
    expect(verdict([arm, x86], { gpu: { count: 1 } })).toEqual({ kind: 'impossible', fields: ['constraints.gpu'] });
    const t4 = server('t4', { hasGpu: true, gpuType: 't4', gpuCount: 1 });
    expect(verdict([t4], { gpu: { count: 2 } })).toEqual({ kind: 'impossible', fields: ['constraints.gpu'] });
    expect(verdict([t4], { gpu: { type: 'a100', count: 1 } })).toEqual({ kind: 'impossible', fields: ['constraints.gpu'] });
  });

  it('constraints each met by some server but never together are impossible as a combination', () => {
    expect(verdict([arm, x86], { architecture: 'arm64', labels: { disk: 'ssd' } })).toEqual({ kind: 'impossible', fields: ['constraints'] });
  });

  it('a tier larger than every server (that meets the constraints) is impossible, overcommit counted', () => {
    const small = server('small', { total: { cpu: 2, memoryMb: 4096, diskGb: 100 }, labels: { disk: 'ssd' } });
    const power = { cpu: 4, memoryMb: 8192, diskGb: 50 };
    expect(verdict([small], { need: power })).toEqual({ kind: 'impossible', fields: ['tier'] });
    // A bigger server elsewhere does not help a request whose constraints only the small one meets.
    expect(verdict([small, arm], { need: power, labels: { disk: 'ssd' } })).toEqual({ kind: 'impossible', fields: ['tier'] });
    expect(refusal([small], { need: power }).excluded).toEqual({ small: ['smaller than the tier'] });
    // Overcommitted twice, the small server holds it once it has room.
    expect(verdict([server('small', { total: small.total, reserved: { cpu: 1, memoryMb: 0, diskGb: 0 } })], { need: power, overcommit: 2 })).toEqual({ kind: 'not_now', fields: [] });
  });

  it('a pinned server that is not registered, retired or the one being left is impossible, naming server', () => {
    expect(verdict([arm, x86], { serverId: 'id-gone' })).toEqual({ kind: 'impossible', fields: ['server'] });
    expect(verdict([server('old', { status: 'drained', cordoned: true })], { serverId: 'id-old' })).toEqual({ kind: 'impossible', fields: ['server'] });
    expect(verdict([arm, x86], { serverId: 'id-x86', avoid: ['id-x86'] })).toEqual({ kind: 'impossible', fields: ['server'] });
    // The chosen server exists but lacks what is asked: that field, said of the chosen server.
    const p = refusal([arm, x86], { serverId: 'id-x86', labels: { disk: 'nvme' } });
    expect([p.kind, p.fields]).toEqual(['impossible', [{ field: 'constraints.labels.disk', message: 'the chosen server does not offer this label' }]]);
  });

  it('what a server could hold once it has room, is uncordoned, reachable, onboarded or out of maintenance is not_now', () => {
    const full = server('full', { reserved: { cpu: 8, memoryMb: 0, diskGb: 0 } });
    for (const s of [
      full,
      server('c', { cordoned: true }),
      server('m', { inMaintenance: true }),
      server('u', { status: 'unreachable' }),
      server('d', { status: 'draining' }),
      server('e', { status: 'error' }),
      // Registered, not onboarded yet: its capacity is not known, so it may well hold the tier.
      server('p', { status: 'pending', total: { cpu: 0, memoryMb: 0, diskGb: 0 } }),
    ]) {
      expect([s.name, verdict([s], {})]).toEqual([s.name, { kind: 'not_now', fields: [] }]);
      expect([s.name, verdict([s], { serverId: s.id })]).toEqual([s.name, { kind: 'not_now', fields: [] }]);
    }
    // One server that could, among others that never could, is enough.
    expect(verdict([full, arm], { labels: { disk: 'ssd' } }).kind).toBe('impossible');
    const fullSsd = server('full-ssd', { labels: { disk: 'ssd' }, reserved: full.reserved });
    expect(verdict([fullSsd, arm], { labels: { disk: 'ssd' } })).toEqual({ kind: 'not_now', fields: [] });
    // A migration whose only other server is full waits; one with no other server that could ever hold it cannot.
    expect(verdict([arm, full], { avoid: ['id-arm'] }).kind).toBe('not_now');
    expect(verdict([arm, x86], { avoid: ['id-arm'], architecture: 'arm64' })).toEqual({ kind: 'impossible', fields: ['constraints.architecture'] });
  });

  it('a retired server never counts; a fleet with no server in service yet is not judged impossible', () => {
    const drained = server('gpu-old', { status: 'drained', hasGpu: true, gpuType: 'a100', gpuCount: 1 });
    expect(verdict([drained, x86], { gpu: { count: 1 } })).toEqual({ kind: 'impossible', fields: ['constraints.gpu'] });
    expect(verdict([], {})).toEqual({ kind: 'not_now', fields: [] });
    expect(verdict([drained], { labels: { any: 'thing' } })).toEqual({ kind: 'not_now', fields: [] });
  });

  it('the reason says the kind and names no server; refusalKind reads it back from a stored reason', () => {
    const impossible = refusal([server('gpu-box-7.fleet.internal')], { gpu: { count: 1 } });
    const notNow = refusal([server('10.0.0.9', { cordoned: true })], {});
    expect([impossible.reason, notNow.reason]).toEqual([REFUSAL_REASON.impossible, REFUSAL_REASON.notNow]);
    for (const p of [impossible, notNow]) {
      expect(JSON.stringify([p.reason, p.fields])).not.toMatch(/gpu-box|10\.0\.0\.9/);
      expect(refusalKind(withDetail(p))).toBe(p.kind);
    }
    expect(refusalKind(REFUSAL_REASON.unknownServer)).toBe('impossible');
    expect(refusalKind('no capacity: every eligible server was filled by concurrent requests')).toBe('not_now');
    expect(refusalKind('image podex/x:1 is not on the server')).toBeNull();
    expect(refusalKind(null)).toBeNull();
  });
});
