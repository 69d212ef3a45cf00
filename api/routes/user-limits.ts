import { Router } from 'express';
import { effectiveLimits, usageOf, type Limits, type Overrides, type PlanName } from '../../domain/quotas';
import type { TierName } from '../../domain/tiers';
import { Prisma, type PrismaClient, type UserLimits } from '../../lib/prisma';
import type { ApiDeps } from '../app';
import { principal, requireAdmin } from '../auth';
import { HttpError, parse, route } from '../errors';
import { userIdParam, userLimitsBody } from '../schemas';

type Db = PrismaClient | Prisma.TransactionClient;

/** Statuses whose workspaces count against a user's limits: all but the ones holding nothing. */
export const NOT_COUNTED = ['deleted', 'failed'];

function overridesOf(row: UserLimits | null): Overrides {
  if (!row) return {};
  const o: Overrides = {};
  if (row.plan !== null) o.plan = row.plan as PlanName;
  if (row.maxWorkspaces !== null) o.maxWorkspaces = row.maxWorkspaces;
  if (row.maxCpu !== null) o.maxCpu = row.maxCpu;
  if (row.maxMemoryMb !== null) o.maxMemoryMb = row.maxMemoryMb;
  if (row.maxDiskGb !== null) o.maxDiskGb = row.maxDiskGb;
  if (row.maxGpus !== null) o.maxGpus = row.maxGpus;
  if (row.tiers !== null) o.tiers = row.tiers as TierName[];
  if (row.serverChoice !== null) o.serverChoice = row.serverChoice;
  return o;
}

/** A user's plan, the limits that apply, what an admin overrode, and what their live workspaces hold. */
export async function limitsOf(db: Db, userId: string, defaultPlan: PlanName) {
  const [row, live] = await Promise.all([
    db.userLimits.findUnique({ where: { userId } }),
    db.workspace.findMany({ where: { ownerId: userId, status: { notIn: NOT_COUNTED } }, select: { tier: true, constraints: true } }),
  ]);
  const overrides = overridesOf(row);
  const { plan, limits } = effectiveLimits(defaultPlan, overrides);
  return { userId, plan, limits: limits as Limits, overrides, usage: usageOf(live) };
}

const queues = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` after every earlier call for `key` in this process has settled. A burst of creates
 * by one user then holds one database connection waiting on that user's advisory lock, not the
 * whole pool (the lock itself orders API processes).
 */
export function oneAtATime<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  queues.set(key, tail);
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return run;
}

/** Per-user limits: a user reads their own; only admins read another's or change any. */
export function userLimitsRouter({ prisma, settings }: ApiDeps): Router {
  const r = Router();

  r.get(
    '/users/:id/limits',
    route(async (req, res) => {
      const { id } = parse(userIdParam, req.params, 'params');
      const p = principal(res);
      if (p.role !== 'admin' && p.id !== id) throw new HttpError(403, 'forbidden', 'admin role required to read another user’s limits');
      res.json(await limitsOf(prisma, id, settings.defaultPlan));
    }),
  );

  r.put(
    '/users/:id/limits',
    requireAdmin,
    route(async (req, res) => {
      const { id } = parse(userIdParam, req.params, 'params');
      const b = parse(userLimitsBody, req.body ?? {});
      const before = await prisma.userLimits.findUnique({ where: { userId: id } });
      const data = {
        plan: b.plan ?? null,
        maxWorkspaces: b.maxWorkspaces ?? null,
        maxCpu: b.maxCpu ?? null,
        maxMemoryMb: b.maxMemoryMb ?? null,
        maxDiskGb: b.maxDiskGb ?? null,
        maxGpus: b.maxGpus ?? null,
        tiers: b.tiers ?? Prisma.DbNull,
        serverChoice: b.serverChoice ?? null,
        updatedBy: principal(res).id,
      };
      const row = await prisma.userLimits.upsert({ where: { userId: id }, create: { userId: id, ...data }, update: data });
      await prisma.auditLog.create({
        data: { actor: principal(res).id, action: 'user.limits', targetType: 'user', targetId: id.slice(0, 64), before: before ? overridesOf(before) : {}, after: overridesOf(row) },
      });
      res.json(await limitsOf(prisma, id, settings.defaultPlan));
    }),
  );

  return r;
}
