import type { Logger } from './logger';
import type { PrismaClient } from './prisma';
import type { Redis } from './redis';
import { ROUTES_CHANNEL } from './constants';
import { acknowledgeAnnouncement, parseAnnouncement } from './route-announce';
import type { RouteRow } from '../domain/workspace-routes';

interface Row {
  id: string;
  owner_id: string;
  status: string;
  route_hold: string | null;
  http_port: number | null;
  published_ports: Record<string, number> | null;
  preview_ports: number[] | null;
  updated_us: bigint;
  address: string | null;
}

const toRoute = (r: Row): RouteRow => ({
  id: r.id,
  ownerId: r.owner_id,
  status: r.status,
  routeHold: r.route_hold,
  address: r.address,
  httpPort: r.http_port,
  publishedPorts: r.published_ports ?? {},
  previewPorts: r.preview_ports ?? [],
  updatedAt: Number(r.updated_us),
});

export interface RouteTableOptions {
  /** How often changed rows are read again (a route announcement lost on Redis is caught here). */
  catchUpMs: number;
  /** How often the whole table is read again (rows removed outright, servers' addresses changed). */
  reloadMs: number;
}

/**
 * Every workspace's route, in this process's memory, equal to the registry: loaded whole at
 * start, each row read again when a workflow step announces a change on Redis, changed rows
 * caught up every second and the whole table again every few minutes. The Workspace Proxy
 * asks for one route per request, so a lookup touches neither the database nor Redis.
 */
export class RouteTable {
  private readonly rows = new Map<string, RouteRow>();
  private sub?: Redis;
  private timers: NodeJS.Timeout[] = [];
  /** The newest change seen, in microseconds since the epoch (the database's clock). */
  private newest = 0;
  private started?: Promise<void>;
  private closed = false;
  private followTimer?: NodeJS.Timeout;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly redis: Redis,
    private readonly logger: Logger,
    private readonly opts: RouteTableOptions = { catchUpMs: 1_000, reloadMs: 5 * 60_000 },
  ) {}

  /**
   * Loads the table and starts following changes; calling it again waits for the first load, or
   * tries again after a failed one. Redis is not needed to load: without it announcements wait
   * until the subscription holds, and the catch-up finds the changes meanwhile.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      if (!this.sub) {
        this.sub = this.redis.duplicate();
        this.sub.on('error', () => undefined); // it reconnects by itself; the API's own connection reports the outage
        this.sub.on('message', (_channel: string, message: string) => {
          const { workspaceId, nonce } = parseAnnouncement(message);
          this.refresh(workspaceId)
            .then(async () => {
              if (nonce) await acknowledgeAnnouncement(this.redis, nonce);
            })
            .catch((err: Error) => this.logger.warn({ workspaceId, err: err.message }, 'route refresh failed'));
        });
        this.follow();
      }
      await this.reload();
      const every = (ms: number, fn: () => Promise<void>, what: string) => {
        const t = setInterval(() => fn().catch((err: Error) => this.logger.warn({ err: err.message }, `route table ${what} failed`)), ms);
        t.unref();
        this.timers.push(t);
      };
      every(this.opts.catchUpMs, () => this.catchUp(), 'catch-up');
      every(this.opts.reloadMs, () => this.reload(), 'reload');
    })().catch((err: Error) => {
      this.started = undefined;
      throw err;
    });
    return this.started;
  }

  /**
   * Subscribes to announcements, again every few seconds until Redis confirms it (ioredis then
   * subscribes again by itself after each reconnect).
   */
  private follow(): void {
    this.sub!.subscribe(ROUTES_CHANNEL).catch((err: Error) => {
      if (this.closed) return;
      this.logger.warn({ err: err.message }, 'route announcements unavailable; following them again in 2 s (the catch-up covers the gap)');
      this.followTimer = setTimeout(() => this.follow(), 2_000);
      this.followTimer.unref();
    });
  }

  get(workspaceId: string): RouteRow | undefined {
    return this.rows.get(workspaceId);
  }

  get size(): number {
    return this.rows.size;
  }

  /** Every route (for the route document a Traefik HTTP provider reads). */
  all(): IterableIterator<RouteRow> {
    return this.rows.values();
  }

  /** Reads one workspace's row again. */
  async refresh(workspaceId: string): Promise<void> {
    if (!/^[0-9a-f-]{36}$/.test(workspaceId)) return;
    const rows = await this.query(`w.id = $1::uuid`, workspaceId);
    if (rows.length) this.apply(rows);
    else this.rows.delete(workspaceId);
  }

  /** Rows changed since the newest change seen (with a margin for transactions that committed late). */
  async catchUp(): Promise<void> {
    const since = new Date(Math.max(0, this.newest / 1000 - 5_000));
    this.apply(await this.query(`w.updated_at > $1`, since));
  }

  /** The whole table again; a row gone from the registry leaves it. */
  async reload(): Promise<void> {
    const startedAt = Date.now() * 1000;
    const rows = await this.query(`w.status <> 'deleted'`);
    this.apply(rows);
    const present = new Set(rows.map((r) => r.id));
    for (const [id, r] of this.rows) if (!present.has(id) && r.updatedAt < startedAt) this.rows.delete(id);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.followTimer);
    for (const t of this.timers) clearInterval(t);
    await this.sub?.quit().catch(() => undefined);
  }

  /** A newer row always wins: an older read (a catch-up racing an announcement) never undoes a newer one. */
  private apply(rows: Row[]): void {
    for (const r of rows) {
      const route = toRoute(r);
      const have = this.rows.get(route.id);
      if (have && have.updatedAt > route.updatedAt) continue;
      this.rows.set(route.id, route);
      if (route.updatedAt > this.newest) this.newest = route.updatedAt;
    }
  }

  private query(where: string, ...params: unknown[]): Promise<Row[]> {
    return this.prisma.$queryRawUnsafe<Row[]>(
      `SELECT w.id::text, w.owner_id, w.status, w.route_hold, w.http_port, w.published_ports, w.preview_ports,
              (extract(epoch FROM w.updated_at) * 1000000)::bigint AS updated_us,
              host(COALESCE(s.private_address, s.ip_address)) AS address
         FROM workspaces w LEFT JOIN workspace_servers s ON s.id = w.server_id
        WHERE ${where}`,
      ...params,
    );
  }
}
