import { randomUUID } from 'node:crypto';
import { Router, type Response } from 'express';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { parseSnapshotTags } from '../../domain/backup';
import { PHASE, WORKSPACE_ID } from '../../lib/constants';
import { ResticError, type Restic } from '../../lib/restic';
import { ttlMemo } from '../../lib/ttl-memo';
import { backupWorkflow, restoreDatabaseWorkflow, restoreWorkspaceWorkflow } from '../../workflows';
import type { ApiDeps } from '../app';
import { principal, requireAdmin } from '../auth';
import { HttpError, conflict, parse, route } from '../errors';
import { listBackupsQuery, restoreBody, startBackupBody, waitQuery } from '../schemas';

/** What a failed backup or restore workflow means to the caller. */
const FAILURE_STATUS: Record<string, [number, string]> = {
  SnapshotNotFound: [404, 'not_found'],
  WrongSnapshotKind: [409, 'conflict'],
  TargetExists: [409, 'conflict'],
  InvalidTarget: [400, 'bad_request'],
  NotRestorable: [409, 'conflict'],
  NoHandshake: [409, 'conflict'],
  WrongPassword: [503, 'repository_unavailable'],
  NoRepository: [503, 'repository_unavailable'],
  BackupFailed: [500, 'backup_failed'],
};

function failureOf(err: unknown): HttpError {
  if (!(err instanceof WorkflowFailedError)) throw err;
  let cause: unknown = err.cause;
  // The workflow's own failure, or the activity failure it let through.
  while (cause && !(cause instanceof ApplicationFailure) && (cause as { cause?: unknown }).cause) cause = (cause as { cause?: unknown }).cause;
  const type = cause instanceof ApplicationFailure ? (cause.type ?? '') : '';
  const [status, code] = FAILURE_STATUS[type] ?? [500, 'failed'];
  return new HttpError(status, code, (cause as Error | undefined)?.message ?? err.message);
}

function resticUnavailable(err: unknown): HttpError {
  if (err instanceof ResticError) return new HttpError(503, 'repository_unavailable', err.message);
  throw err;
}

/** A snapshot as the list shows it: a few short strings, whatever restic reports besides. */
type SnapshotView = { id: string; time: string } & ReturnType<typeof parseSnapshotTags>;

/** How long the API reuses the repository's snapshot list (restic lists all of it, every time). */
const LIST_TTL_MS = 30_000;

/**
 * The repository's snapshots, newest first, read from restic at most once per `ttlMs` (callers
 * in that window share one read) and kept as compact views, not restic's full records.
 */
export class SnapshotCatalog {
  private readonly memo: ReturnType<typeof ttlMemo<SnapshotView[]>>;

  constructor(restic: Restic, ttlMs = LIST_TTL_MS) {
    this.memo = ttlMemo(ttlMs, () =>
      restic.snapshots({ tags: ['podex'] }).then((snapshots) =>
        snapshots
          .map((s): SnapshotView => ({ id: s.id, time: s.time, ...parseSnapshotTags(s.tags) }))
          .sort((a, b) => b.time.localeCompare(a.time) || b.id.localeCompare(a.id)),
      ),
    );
  }

  /** The newest first; a failed read is not kept (the next call asks restic again). */
  list(): Promise<SnapshotView[]> {
    return this.memo.get();
  }

  /** A backup this API started or finished: the next list reads the repository again. */
  invalidate(): void {
    this.memo.invalidate();
  }
}

const cursorOf = (s: SnapshotView) => Buffer.from(JSON.stringify([s.time, s.id])).toString('base64url');
function parseCursor(cursor: string): [string, string] {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString());
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'string')) return v as [string, string];
  } catch {
    // falls through to the 400
  }
  throw new HttpError(400, 'bad_request', 'before: not a cursor this API gave (use nextCursor of the previous page)');
}

/** Backups (admin only): runs, snapshots, restores. */
export function backupsRouter(deps: ApiDeps & { restic: Restic }): Router {
  const { prisma, temporal, settings, restic } = deps;
  const catalog = new SnapshotCatalog(restic);
  const r = Router();
  const ui = (workflowId: string) => `${settings.temporalUiUrl}/namespaces/${settings.namespace}/workflows/${workflowId}`;
  r.use('/backups', requireAdmin);

  async function answer(res: Response, handle: WorkflowHandle, wait: boolean, key: string) {
    const started = { workflowId: handle.workflowId, temporalUi: ui(handle.workflowId) };
    if (!wait) return res.status(202).json(started);
    try {
      return res.json({ ...started, [key]: await handle.result() });
    } catch (err) {
      throw failureOf(err);
    }
  }

  r.get(
    '/backups',
    route(async (req, res) => {
      const q = parse(listBackupsQuery, req.query, 'query');
      const after = q.before === undefined ? undefined : parseCursor(q.before);
      const all = await catalog.list().catch((err) => {
        throw resticUnavailable(err);
      });
      const page: SnapshotView[] = [];
      let more = false;
      for (const s of all) {
        if (after && (s.time > after[0] || (s.time === after[0] && s.id >= after[1]))) continue;
        if ((q.kind && s.kind !== q.kind) || (q.workspaceId && s.workspaceId !== q.workspaceId)) continue;
        if (page.length === q.limit) {
          more = true;
          break;
        }
        page.push(s);
      }
      const runs = await prisma.backupRun.findMany({ orderBy: { startedAt: 'desc' }, take: q.runs });
      res.json({
        repository: restic.where,
        snapshots: page,
        nextCursor: more ? cursorOf(page[page.length - 1]) : null,
        runs: runs.map((run) => ({
          workflowId: run.workflowId,
          trigger: run.trigger,
          status: run.status,
          snapshots: Array.isArray(run.snapshots) ? run.snapshots.length : 0,
          bytes: Number(run.bytes),
          error: run.error,
          startedAt: run.startedAt.toISOString(),
          finishedAt: run.finishedAt?.toISOString() ?? null,
        })),
      });
    }),
  );

  /** Starts a backup run now (the schedule runs one daily). 202, or the run's result with ?wait=true. */
  r.post(
    '/backups',
    route(async (req, res) => {
      const body = parse(startBackupBody, req.body ?? {});
      const q = parse(waitQuery, req.query, 'query');
      const workflowId = `backup-${randomUUID()}`;
      catalog.invalidate();
      const handle = await temporal.workflow.start(backupWorkflow, {
        taskQueue: settings.taskQueue,
        workflowId,
        args: [{ trigger: 'api', ...body }],
        typedSearchAttributes: [{ key: PHASE, value: 'starting' }],
      });
      await prisma.auditLog.create({ data: { actor: principal(res).id, action: 'backup.start', targetType: 'backup', targetId: workflowId, after: body } });
      try {
        await answer(res, handle, q.wait === 'true', 'backup');
      } finally {
        catalog.invalidate();
      }
    }),
  );

  /**
   * Restores a workspace volume (in place or into a new volume) or the database (into a new
   * database). The snapshot is checked first, so a wrong id or kind is a 4xx at once.
   */
  r.post(
    '/backups/restore',
    route(async (req, res) => {
      const body = parse(restoreBody, req.body);
      const q = parse(waitQuery, req.query, 'query');
      const snap = await restic.snapshot(body.snapshotId).catch((err) => {
        throw resticUnavailable(err);
      });
      if (!snap) throw new HttpError(404, 'not_found', `snapshotId: no snapshot ${body.snapshotId} in the repository`);
      const tags = parseSnapshotTags(snap.tags);
      const actor = principal(res).id;
      let handle: WorkflowHandle;
      if (body.workspaceId) {
        if (tags.kind !== 'workspace' || tags.workspaceId !== body.workspaceId) {
          throw new HttpError(400, 'bad_request', `snapshotId: snapshot ${body.snapshotId} is not a backup of workspace ${body.workspaceId}`);
        }
        const ws = await prisma.workspace.findUnique({ where: { id: body.workspaceId }, select: { status: true } });
        if (!ws) throw new HttpError(404, 'not_found', 'workspaceId: workspace not found');
        if (body.mode === 'in-place' && !['running', 'stopped'].includes(ws.status)) throw conflict(`a ${ws.status} workspace cannot be restored in place`);
        const workflowId = `restore-workspace-${body.workspaceId}`;
        handle = await temporal.workflow
          .start(restoreWorkspaceWorkflow, {
            taskQueue: settings.taskQueue,
            workflowId,
            args: [{ workspaceId: body.workspaceId, snapshotId: snap.id, mode: body.mode, image: settings.workspaceImage }],
            typedSearchAttributes: [
              { key: WORKSPACE_ID, value: body.workspaceId },
              { key: PHASE, value: 'checking-snapshot' },
            ],
          })
          .catch((err: Error) => {
            if (err.name === 'WorkflowExecutionAlreadyStartedError') throw conflict('a restore of this workspace is already running');
            throw err;
          });
      } else {
        if (tags.kind !== 'database') throw new HttpError(400, 'bad_request', `snapshotId: snapshot ${body.snapshotId} is not a database backup`);
        const target = body.targetDatabase!;
        handle = await temporal.workflow
          .start(restoreDatabaseWorkflow, {
            taskQueue: settings.taskQueue,
            workflowId: `restore-database-${target}`,
            args: [{ snapshotId: snap.id, targetDatabase: target }],
            typedSearchAttributes: [{ key: PHASE, value: 'restoring' }],
          })
          .catch((err: Error) => {
            if (err.name === 'WorkflowExecutionAlreadyStartedError') throw conflict(`a restore into ${target} is already running`);
            throw err;
          });
      }
      await prisma.auditLog.create({
        data: { actor, action: 'backup.restore', targetType: body.workspaceId ? 'workspace' : 'database', targetId: body.workspaceId ?? body.targetDatabase!, after: { ...body, snapshotId: snap.id } },
      });
      await answer(res, handle, q.wait === 'true', 'restore');
    }),
  );

  return r;
}
