import { loadCandidates } from '../activities/reservations';
import { place, refusalKind, withDetail, type Placement, type Strategy } from '../domain/placement';
import { NO_CAPACITY } from '../domain/status-reasons';
import { TIERS, type TierName } from '../domain/tiers';
import type { Prisma, PrismaClient } from '../lib/prisma';
import { HttpError } from './errors';

/**
 * How long a client is asked to wait when no server can take a workspace now. 30 s is the fleet
 * heartbeat's default interval: the soonest an unreachable server is seen back or the registry's
 * usage changes by itself. A delete, an uncordon or the end of a window frees room at any moment,
 * so a longer wait would keep most clients waiting well after room was there again.
 */
export const PLACEMENT_RETRY_AFTER_SECONDS = 30;

export type Refusal = Extract<Placement, { ok: false }>;

/** What a workspace asks of its server, as a request or its record says it. */
export interface Wanted {
  tier: string;
  strategy: string;
  serverId?: string;
  constraints?: { architecture?: string; region?: string; labels?: Record<string, string>; gpu?: { type?: string; count: number } } | null;
  /** The server a migration moves the workspace away from. */
  avoid?: string[];
}

/**
 * Placement against the servers as they are now, before anything is recorded: one query, in the
 * caller's transaction when it has one. The workflow places again and reserves; this answers early
 * what it would refuse. Null when some server can take it (or the tier is unknown: the workflow says so).
 */
export async function checkPlacement(db: PrismaClient | Prisma.TransactionClient, w: Wanted, overcommit: number): Promise<Refusal | null> {
  const tier = TIERS[w.tier as TierName];
  if (!tier) return null;
  const c = w.constraints ?? {};
  // Without affinity no workspace id is read.
  const { candidates } = await loadCandidates(db, '', false);
  const p = place(candidates, {
    need: { cpu: tier.cpu, memoryMb: tier.memoryMb, diskGb: tier.diskGb },
    strategy: w.strategy as Strategy,
    serverId: w.serverId,
    architecture: c.architecture,
    region: c.region,
    labels: c.labels,
    gpu: c.gpu,
    avoid: w.avoid,
    overcommit,
  });
  return p.ok ? null : p;
}

/** Says when to ask again: every answer that means "no server can take it now" carries it. */
const retryLater = { 'Retry-After': String(PLACEMENT_RETRY_AFTER_SECONDS) };

/**
 * A refused placement as the API answers it. No server could ever take it: 422 naming each field
 * (`serverField` is what the request calls the pinned server). None can take it now: 503 with
 * Retry-After. Users get fields and short reasons only; admins also which server was excluded why.
 */
export function placementError(p: Refusal, opts: { admin: boolean; serverField?: string }): HttpError {
  const detail = opts.admin ? { detail: withDetail(p) } : {};
  if (p.kind === 'impossible') {
    const fields = p.fields.map((f) => (f.field === 'server' ? { ...f, field: opts.serverField ?? 'server' } : f));
    return new HttpError(422, 'unsatisfiable', fields.map((f) => `${f.field}: ${f.message}`).join('; '), { fields, ...detail });
  }
  return new HttpError(503, 'no_capacity', NO_CAPACITY, opts.admin ? detail : undefined, retryLater);
}

/**
 * The answer to a workspace or migration the workflow refused at placement (the fleet changed after
 * the API's check): its stored reason says which kind it was. Null when the reason is not a placement
 * refusal. `message` is what the caller may read of the reason.
 */
export function storedRefusalError(reason: string | null | undefined, message: string, details: unknown): HttpError | null {
  const kind = refusalKind(reason);
  if (kind === 'impossible') return new HttpError(422, 'unsatisfiable', message, details);
  if (kind === 'not_now') return new HttpError(503, 'no_capacity', message, details, retryLater);
  return null;
}
