import { afterHeartbeat, auditVerdict, fits, freeCapacity, maintenanceEndsAt, normalizeArchitecture, type DaemonFinding } from './servers';

describe('afterHeartbeat', () => {
  const active = { status: 'active', missedHeartbeats: 0, statusBeforeUnreachable: null };

  it('marks a server unreachable only after K consecutive misses', () => {
    let s = afterHeartbeat(active, false, 3);
    expect(s).toEqual({ status: 'active', missedHeartbeats: 1, statusBeforeUnreachable: null });
    s = afterHeartbeat(s, false, 3);
    expect(s.status).toBe('active');
    s = afterHeartbeat(s, false, 3);
    expect(s).toEqual({ status: 'unreachable', missedHeartbeats: 3, statusBeforeUnreachable: 'active' });
    s = afterHeartbeat(s, false, 3);
    expect(s).toEqual({ status: 'unreachable', missedHeartbeats: 4, statusBeforeUnreachable: 'active' });
  });

  it('an answer resets the count and restores the status the server had', () => {
    const draining = { status: 'unreachable', missedHeartbeats: 5, statusBeforeUnreachable: 'draining' };
    expect(afterHeartbeat(draining, true, 3)).toEqual({ status: 'draining', missedHeartbeats: 0, statusBeforeUnreachable: null });
    expect(afterHeartbeat({ ...active, missedHeartbeats: 2 }, true, 3)).toEqual(active);
  });
});

describe('maintenanceEndsAt', () => {
  const t = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m));
  it('is null outside every window', () => {
    expect(maintenanceEndsAt([{ startsAt: t(10), endsAt: t(20) }], t(5))).toBeNull();
    expect(maintenanceEndsAt([{ startsAt: t(10), endsAt: t(20) }], t(20))).toBeNull();
  });
  it('follows windows that overlap or touch the current one', () => {
    const windows = [
      { startsAt: t(30), endsAt: t(40) },
      { startsAt: t(0), endsAt: t(10) },
      { startsAt: t(10), endsAt: t(15) },
      { startsAt: t(12), endsAt: t(25) },
    ];
    expect(maintenanceEndsAt(windows, t(5))).toEqual(t(25));
    expect(maintenanceEndsAt(windows, t(35))).toEqual(t(40));
    expect(maintenanceEndsAt(windows, t(27))).toBeNull();
  });
});

describe('auditVerdict', () => {
  const f = (check: string, ok: boolean, required = false): DaemonFinding => ({ check, ok, detail: ok ? 'ok' : 'off', required });
  it('fails on a required check in any mode, on any check in strict mode', () => {
    expect(auditVerdict([f('runsc runtime', false, true)], false).ok).toBe(false);
    expect(auditVerdict([f('userns-remap', false)], false).ok).toBe(true);
    expect(auditVerdict([f('userns-remap', false), f('live-restore', true)], true)).toEqual({
      ok: false,
      reason: 'daemon audit failed: userns-remap (off)',
      waived: [],
    });
  });

  it('names every failed check it does not enforce instead of passing over it', () => {
    expect(auditVerdict([f('userns-remap', false), f('live-restore', true), f('icc disabled', false)], false)).toEqual({
      ok: true,
      waived: ['userns-remap (off)', 'icc disabled (off)'],
    });
    expect(auditVerdict([f('runsc runtime', false, true), f('userns-remap', false)], false)).toEqual({
      ok: false,
      reason: 'daemon audit failed: runsc runtime (off)',
      waived: ['userns-remap (off)'],
    });
    expect(auditVerdict([f('live-restore', true)], false)).toEqual({ ok: true, waived: [] });
  });
});

describe('capacity', () => {
  it('subtracts reservations from total × overcommit', () => {
    expect(freeCapacity({ cpu: 4, memoryMb: 8192, diskGb: 100 }, { cpu: 3, memoryMb: 8000, diskGb: 120 })).toEqual({ cpu: 1, memoryMb: 192, diskGb: 0 });
    expect(freeCapacity({ cpu: 4, memoryMb: 1000, diskGb: 10 }, { cpu: 4, memoryMb: 0, diskGb: 0 }, 1.5)).toEqual({ cpu: 2, memoryMb: 1500, diskGb: 15 });
  });
  it('fits only when every dimension fits', () => {
    expect(fits({ cpu: 1, memoryMb: 1024, diskGb: 5 }, { cpu: 1, memoryMb: 1024, diskGb: 5 })).toBe(true);
    expect(fits({ cpu: 1, memoryMb: 1024, diskGb: 6 }, { cpu: 8, memoryMb: 9999, diskGb: 5 })).toBe(false);
  });
  it('normalizes Docker architectures', () => {
    expect(normalizeArchitecture('x86_64')).toBe('amd64');
    expect(normalizeArchitecture('aarch64')).toBe('arm64');
  });
});
