import { ApplicationFailure } from '@temporalio/activity';
import { place, type Candidate, type PlacementRequest } from '../domain/placement';
import type { PrismaClient } from '../lib/prisma';

export interface ReservationDeps {
  prisma: PrismaClient;
  overcommit: number;
}

/** A placement request for one workspace (overcommit and affinity are filled in here). */
export type ReserveRequest = { workspaceId: string } & Omit<PlacementRequest, 'overcommit' | 'affinity'>;

export interface Reservation {
  serverId: string;
  host: string;
  port: number;
  runtime: string;
}

/** Loads every server as a placement candidate, with maintenance and reservations. */
export async function loadCandidates(prisma: PrismaClient): Promise<Candidate[]> {
  const now = new Date();
  const [servers, windows] = await Promise.all([
    prisma.workspaceServer.findMany(),
    prisma.maintenanceWindow.findMany({ where: { startsAt: { lte: now }, endsAt: { gt: now } }, select: { serverId: true } }),
  ]);
  const maint = new Set(windows.map((w) => w.serverId));
  return servers.map((s) => ({
    id: s.id,
    name: s.name === s.hostname ? s.name : `${s.name} (${s.hostname})`,
    status: s.status ?? 'active',
    cordoned: s.cordoned,
    inMaintenance: maint.has(s.id),
    architecture: s.architecture,
    region: s.region,
    labels: (s.labels ?? {}) as Record<string, unknown>,
    hasGpu: s.hasGpu ?? false,
    gpuType: s.gpuType,
    gpuCount: s.gpuCount ?? 0,
    total: { cpu: s.totalCpu, memoryMb: s.totalMemoryMb, diskGb: s.totalDiskGb },
    reserved: { cpu: s.reservedCpu, memoryMb: s.reservedMemoryMb, diskGb: s.reservedDiskGb },
  }));
}

export function createReservationActivities({ prisma, overcommit }: ReservationDeps) {
  async function reservationOf(workspaceId: string): Promise<Reservation | null> {
    const ws = await prisma.workspace.findUnique({ where: { id: workspaceId }, include: { server: true } });
    if (!ws) throw ApplicationFailure.nonRetryable(`workspace ${workspaceId} does not exist`, 'WorkspaceNotFound');
    if (!ws.server || ws.assignedCpu === null) return null;
    return { serverId: ws.server.id, host: ws.server.ipAddress.replace(/\/\d+$/, ''), port: ws.server.dockerPort ?? 2376, runtime: ws.server.dockerRuntime ?? 'runsc' };
  }

  return {
    /**
     * Places the workspace and reserves the capacity on the chosen server. The reservation
     * is one conditional UPDATE of the server's counters: PostgreSQL re-checks the condition
     * against the newest row under its lock, so concurrent placements cannot overbook.
     * Idempotent: a workspace that already holds a reservation gets it back.
     */
    async reserveCapacity(r: ReserveRequest): Promise<Reservation> {
      const existing = await reservationOf(r.workspaceId);
      if (existing) return existing;
      const owner = await prisma.workspace.findUniqueOrThrow({ where: { id: r.workspaceId }, select: { ownerId: true } });
      const affinityRows = await prisma.workspace.groupBy({
        by: ['serverId'],
        where: { ownerId: owner.ownerId, serverId: { not: null }, status: { notIn: ['deleted', 'failed'] }, id: { not: r.workspaceId } },
        _count: { _all: true },
        orderBy: { _count: { serverId: 'desc' } },
      });
      const placement = place(await loadCandidates(prisma), { ...r, overcommit, affinity: affinityRows.map((a) => a.serverId!) });
      if (!placement.ok) throw ApplicationFailure.nonRetryable(placement.reason, 'NoCapacity', placement.excluded);

      for (const s of placement.ranked) {
        const won = await prisma.$transaction(async (tx) => {
          const n = await tx.$executeRaw`
            UPDATE workspace_servers
               SET reserved_cpu = reserved_cpu + ${r.need.cpu}, reserved_memory_mb = reserved_memory_mb + ${r.need.memoryMb},
                   reserved_disk_gb = reserved_disk_gb + ${r.need.diskGb}
             WHERE id = ${s.id}::uuid AND status = 'active' AND NOT cordoned
               AND reserved_cpu + ${r.need.cpu} <= total_cpu * ${overcommit}
               AND reserved_memory_mb + ${r.need.memoryMb} <= total_memory_mb * ${overcommit}
               AND reserved_disk_gb + ${r.need.diskGb} <= total_disk_gb * ${overcommit}`;
          if (n !== 1) return false;
          const claimed = await tx.workspace.updateMany({
            where: { id: r.workspaceId, assignedCpu: null },
            data: { serverId: s.id, assignedCpu: r.need.cpu, assignedMemoryMb: r.need.memoryMb, assignedDiskGb: r.need.diskGb },
          });
          // Another attempt of this same workspace won meanwhile: undo ours by rolling back.
          if (claimed.count !== 1) throw new Error('reservation already held');
          return true;
        }).catch((err: Error) => {
          if (err.message === 'reservation already held') return false;
          throw err;
        });
        if (won) return (await reservationOf(r.workspaceId))!;
      }
      const again = await reservationOf(r.workspaceId);
      if (again) return again;
      throw ApplicationFailure.nonRetryable('no capacity: every eligible server was filled by concurrent requests', 'NoCapacity');
    },

    /** Gives the workspace's capacity back to its server; a second call finds nothing to release. */
    async releaseCapacity(workspaceId: string): Promise<boolean> {
      const n = await prisma.$executeRaw`
        WITH ws AS (
          SELECT id, server_id, assigned_cpu, assigned_memory_mb, assigned_disk_gb
            FROM workspaces WHERE id = ${workspaceId}::uuid AND assigned_cpu IS NOT NULL FOR UPDATE
        ), cleared AS (
          UPDATE workspaces w SET assigned_cpu = NULL, assigned_memory_mb = NULL, assigned_disk_gb = NULL
            FROM ws WHERE w.id = ws.id
          RETURNING ws.server_id, ws.assigned_cpu, ws.assigned_memory_mb, ws.assigned_disk_gb
        )
        UPDATE workspace_servers s
           SET reserved_cpu = GREATEST(0, s.reserved_cpu - c.assigned_cpu),
               reserved_memory_mb = GREATEST(0, s.reserved_memory_mb - c.assigned_memory_mb),
               reserved_disk_gb = GREATEST(0, s.reserved_disk_gb - c.assigned_disk_gb)
          FROM cleared c WHERE s.id = c.server_id`;
      return n > 0;
    },
  };
}
