import { Router } from 'express';
import type { ApiDeps } from '../app';
import { requireAdmin } from '../auth';
import { parse, route } from '../errors';
import { auditQuery } from '../schemas';

/** The admin audit log, newest first, paged by id. */
export function auditRouter({ prisma }: ApiDeps): Router {
  const r = Router();
  r.get(
    '/audit',
    requireAdmin,
    route(async (req, res) => {
      const q = parse(auditQuery, req.query, 'query');
      const rows = await prisma.auditLog.findMany({
        where: { targetType: q.targetType, targetId: q.targetId, ...(q.before ? { id: { lt: BigInt(q.before) } } : {}) },
        orderBy: { id: 'desc' },
        take: q.limit,
      });
      res.json({
        entries: rows.map((e) => ({ ...e, id: e.id.toString(), createdAt: e.createdAt.toISOString() })),
        next: rows.length === q.limit ? rows[rows.length - 1].id.toString() : null,
      });
    }),
  );
  return r;
}
