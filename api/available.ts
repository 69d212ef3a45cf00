import { freeCapacity, fits, type Capacity } from '../domain/servers';
import type { Tier } from '../domain/tiers';
import type { PrismaClient } from '../lib/prisma';

export interface AvailableServer {
  id: string;
  name: string;
  region: string | null;
  architecture: string | null;
  hasGpu: boolean;
  gpuType: string | null;
  free: Capacity;
}

interface Row {
  id: string;
  name: string;
  region: string | null;
  architecture: string | null;
  has_gpu: boolean | null;
  gpu_type: string | null;
  total_cpu: number;
  total_memory_mb: number;
  total_disk_gb: number;
  r_cpu: number;
  r_mem: number;
  r_disk: number;
}

/**
 * Servers users may choose: active, not cordoned, not in maintenance, with their free
 * capacity. One SQL statement (this is the API's hottest read), and each answer is kept
 * for `ttlMs` with concurrent callers sharing one query, so a burst of users costs one
 * query per interval. Placement reserves capacity atomically, so a stale list can at
 * worst offer a server that placement then refuses.
 */
export class AvailableServers {
  private cached?: { at: number; rows: Promise<Row[]> };

  constructor(
    private readonly prisma: PrismaClient,
    private readonly overcommit: number,
    private readonly ttlMs = 1_000,
  ) {}

  private query(): Promise<Row[]> {
    return this.prisma.$queryRaw<Row[]>`
      SELECT s.id::text AS id, s.name, s.region, s.architecture, s.has_gpu, s.gpu_type,
             s.total_cpu, s.total_memory_mb, s.total_disk_gb,
             s.reserved_cpu AS r_cpu, s.reserved_memory_mb AS r_mem, s.reserved_disk_gb AS r_disk
      FROM workspace_servers s
      WHERE s.status = 'active' AND NOT s.cordoned
        AND NOT EXISTS (SELECT 1 FROM maintenance_windows m WHERE m.server_id = s.id AND m.starts_at <= now() AND m.ends_at > now())
      ORDER BY s.name`;
  }

  async forTier(need: Tier): Promise<AvailableServer[]> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > this.ttlMs) {
      const rows = this.query();
      this.cached = { at: now, rows };
      rows.catch(() => {
        if (this.cached?.rows === rows) this.cached = undefined;
      });
    }
    const rows = await this.cached.rows;
    const out: AvailableServer[] = [];
    for (const r of rows) {
      const free = freeCapacity(
        { cpu: r.total_cpu, memoryMb: r.total_memory_mb, diskGb: r.total_disk_gb },
        { cpu: r.r_cpu, memoryMb: r.r_mem, diskGb: r.r_disk },
        this.overcommit,
      );
      if (!fits({ cpu: need.cpu, memoryMb: need.memoryMb, diskGb: need.diskGb }, free)) continue;
      out.push({ id: r.id, name: r.name, region: r.region, architecture: r.architecture, hasGpu: r.has_gpu ?? false, gpuType: r.gpu_type, free });
    }
    return out;
  }

  /** Drops the cached list (after an admin change this process made). */
  invalidate(): void {
    this.cached = undefined;
  }
}
