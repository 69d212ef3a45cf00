import type { z } from 'zod';
import { freeCapacity, type Capacity } from '../domain/servers';
import type { PrismaClient, WorkspaceServer } from '../lib/prisma';
import type { serverView } from './schemas';

/** Servers under maintenance right now. */
export async function inMaintenanceNow(prisma: PrismaClient, serverIds: string[]): Promise<Set<string>> {
  if (serverIds.length === 0) return new Set();
  const now = new Date();
  const rows = await prisma.maintenanceWindow.findMany({
    where: { serverId: { in: serverIds }, startsAt: { lte: now }, endsAt: { gt: now } },
    select: { serverId: true },
  });
  return new Set(rows.map((r) => r.serverId));
}

const total = (s: WorkspaceServer): Capacity => ({ cpu: s.totalCpu, memoryMb: s.totalMemoryMb, diskGb: s.totalDiskGb });

/** The admin's view of a server (no key material is ever stored, so none can leak). */
export function toServerView(s: WorkspaceServer, inMaintenance: boolean, overcommit: number): z.infer<typeof serverView> {
  const r: Capacity = { cpu: s.reservedCpu, memoryMb: s.reservedMemoryMb, diskGb: s.reservedDiskGb };
  return {
    id: s.id,
    name: s.name,
    hostname: s.hostname,
    ipAddress: s.ipAddress,
    privateAddress: s.privateAddress,
    dockerPort: s.dockerPort ?? 2376,
    sshPort: s.sshPort ?? 22,
    status: s.status ?? 'active',
    cordoned: s.cordoned,
    inMaintenance,
    architecture: s.architecture,
    dockerRuntime: s.dockerRuntime,
    hasGpu: s.hasGpu ?? false,
    gpuType: s.gpuType,
    gpuCount: s.gpuCount ?? 0,
    region: s.region,
    provider: s.provider,
    labels: (s.labels ?? {}) as Record<string, unknown>,
    total: total(s),
    hostCpus: s.hostCpus,
    used: { cpu: s.usedCpu ?? 0, memoryMb: s.usedMemoryMb ?? 0, diskGb: s.usedDiskGb ?? 0, activeWorkspaces: s.activeWorkspaces ?? 0 },
    reserved: r,
    free: freeCapacity(total(s), r, overcommit),
    lastHeartbeat: s.lastHeartbeat?.toISOString() ?? null,
    missedHeartbeats: s.missedHeartbeats,
    lastError: s.lastError,
    daemonAudit: s.daemonAudit ?? null,
    createdAt: s.createdAt?.toISOString() ?? null,
    updatedAt: s.updatedAt?.toISOString() ?? null,
  };
}

/** A JSON-safe snapshot of a row for the audit log. */
export function snapshot(row: object | null): object | null {
  return row ? JSON.parse(JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) : null;
}
