/** Workspace-server rules: status transitions, maintenance windows, daemon audit verdicts, capacity. */

export const SERVER_STATUSES = ['pending', 'active', 'error', 'unreachable', 'draining', 'drained'] as const;
export type ServerStatus = (typeof SERVER_STATUSES)[number];

/** Statuses the fleet heartbeat watches (a pending or failed onboarding is not in service yet). */
export const MONITORED_STATUSES: readonly ServerStatus[] = ['active', 'unreachable', 'draining', 'drained'];

export function normalizeArchitecture(dockerArch: string): string {
  const a = dockerArch.toLowerCase();
  if (a === 'x86_64' || a === 'amd64') return 'amd64';
  if (a === 'aarch64' || a === 'arm64') return 'arm64';
  return a;
}

export interface HeartbeatState {
  status: string;
  missedHeartbeats: number;
  statusBeforeUnreachable: string | null;
}

/**
 * The server's state after one heartbeat. K consecutive misses make it `unreachable`
 * (remembering what it was); the first answer afterwards restores that status.
 */
export function afterHeartbeat(state: HeartbeatState, answered: boolean, threshold: number): HeartbeatState {
  if (answered) {
    if (state.status === 'unreachable') {
      return { status: state.statusBeforeUnreachable ?? 'active', missedHeartbeats: 0, statusBeforeUnreachable: null };
    }
    return { ...state, missedHeartbeats: 0 };
  }
  const missed = state.missedHeartbeats + 1;
  if (missed >= threshold && state.status !== 'unreachable') {
    return { status: 'unreachable', missedHeartbeats: missed, statusBeforeUnreachable: state.status };
  }
  return { ...state, missedHeartbeats: missed };
}

export interface Window {
  startsAt: Date;
  endsAt: Date;
}

/**
 * When the maintenance covering `now` ends, following windows that overlap or touch it;
 * null when no window covers `now`.
 */
export function maintenanceEndsAt(windows: readonly Window[], now: Date): Date | null {
  const sorted = [...windows].sort((a, b) => a.startsAt.getTime() - b.startsAt.getTime());
  let end: number | null = null;
  for (const w of sorted) {
    const s = w.startsAt.getTime();
    const e = w.endsAt.getTime();
    if (end === null) {
      if (s <= now.getTime() && now.getTime() < e) end = e;
    } else if (s <= end) {
      end = Math.max(end, e);
    }
  }
  return end === null ? null : new Date(end);
}

export interface DaemonFinding {
  check: string;
  ok: boolean;
  detail: string;
  /** Required checks fail onboarding in every mode; the rest only in strict mode. */
  required: boolean;
}

/**
 * Whether a server may enter service. Outside strict mode a failed optional check is not
 * enforced but still named in `waived` (a local engine without userns-remap says so), never
 * passed over in silence.
 */
export function auditVerdict(findings: readonly DaemonFinding[], strict: boolean): { ok: boolean; reason?: string; waived: string[] } {
  const failing = findings.filter((f) => !f.ok && (f.required || strict));
  const waived = findings.filter((f) => !f.ok && !f.required && !strict).map((f) => `${f.check} (${f.detail})`);
  if (failing.length === 0) return { ok: true, waived };
  return { ok: false, reason: `daemon audit failed: ${failing.map((f) => `${f.check} (${f.detail})`).join('; ')}`, waived };
}

export interface Capacity {
  cpu: number;
  memoryMb: number;
  diskGb: number;
}

/** Free capacity = total × overcommit − reserved, never below zero. */
export function freeCapacity(total: Capacity, reserved: Capacity, overcommit = 1): Capacity {
  const free = (t: number, r: number) => Math.max(0, t * overcommit - r);
  return {
    cpu: Math.round(free(total.cpu, reserved.cpu) * 100) / 100,
    memoryMb: Math.floor(free(total.memoryMb, reserved.memoryMb)),
    diskGb: Math.floor(free(total.diskGb, reserved.diskGb)),
  };
}

/** `fits(need, freeCapacity(total, reserved, overcommit))` without the allocations, for scans of many servers. */
export function fitsOn(need: Capacity, total: Capacity, reserved: Capacity, overcommit = 1): boolean {
  const cpu = total.cpu * overcommit - reserved.cpu;
  const memoryMb = total.memoryMb * overcommit - reserved.memoryMb;
  const diskGb = total.diskGb * overcommit - reserved.diskGb;
  return (
    need.cpu <= (cpu > 0 ? Math.round(cpu * 100) / 100 : 0) &&
    need.memoryMb <= (memoryMb > 0 ? Math.floor(memoryMb) : 0) &&
    need.diskGb <= (diskGb > 0 ? Math.floor(diskGb) : 0)
  );
}

export function fits(need: Capacity, free: Capacity): boolean {
  return need.cpu <= free.cpu && need.memoryMb <= free.memoryMb && need.diskGb <= free.diskGb;
}
