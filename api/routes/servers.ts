import { Router } from 'express';
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { decodeOptionalSinglePayload } from '@temporalio/common/lib/internal-non-workflow';
import { tier, type TierName } from '../../domain/tiers';
import { PHASE, SERVER_ID, WORKFLOW_ID } from '../../lib/constants';
import { drainServerWorkflow, onboardServerWorkflow } from '../../workflows';
import { cancelDrainSignal, drainStateQuery, pauseDrainSignal, resumeDrainSignal, type DrainState } from '../../workflows/drain-server';
import { migrationStateQuery, type MigrationState } from '../../workflows/migrate-workspace';
import type { ApiDeps } from '../app';
import { principal, requireAdmin } from '../auth';
import { conflict, notFound, parse, route } from '../errors';
import { availableQuery, createServerBody, drainActionParams, drainBody, listServersQuery, maintenanceBody, updateServerBody, uuidParam, windowParams } from '../schemas';
import { AvailableServers } from '../available';
import { inMaintenanceNow, snapshot, toServerView } from '../server-views';
import { startOrUndo } from '../workflow-start';
import { askWorkflow, queryWorkflow, unanswered } from '../workflow-queries';

/** The fleet admin API (seed Task 3.5) plus the user-facing list of servers to choose from. */
export function serversRouter(deps: ApiDeps): Router {
  const { prisma, temporal, settings } = deps;
  const r = Router();
  const available = new AvailableServers(prisma, settings.overcommit, settings.availableCacheMs);
  const ui = (workflowId: string) => `${settings.temporalUiUrl}/namespaces/${settings.namespace}/workflows/${workflowId}`;

  async function viewOf(id: string) {
    const s = await prisma.workspaceServer.findUnique({ where: { id } });
    if (!s) throw notFound('server');
    const maint = await inMaintenanceNow(prisma, [id]);
    return toServerView(s, maint.has(id), settings.overcommit);
  }

  async function startOnboarding(serverId: string, strict: boolean) {
    const workflowId = WORKFLOW_ID.onboardServer(serverId);
    const handle = await temporal.workflow.start(onboardServerWorkflow, {
      taskQueue: settings.taskQueue,
      workflowId,
      args: [{ serverId, image: settings.workspaceImage, strict }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [
        { key: SERVER_ID, value: serverId },
        { key: PHASE, value: 'starting' },
      ],
    });
    return { workflowId, runId: handle.firstExecutionRunId, temporalUi: `${settings.temporalUiUrl}/namespaces/${settings.namespace}/workflows/${workflowId}` };
  }

  /** Servers a user may choose for a workspace of `tier`, with their free capacity. */
  r.get(
    '/servers/available',
    route(async (req, res) => {
      const q = parse(availableQuery, req.query, 'query');
      const need = tier(q.tier as TierName);
      const out = await available.forTier(need);
      res.json({ tier: need.name, servers: out });
    }),
  );

  r.use('/servers', requireAdmin);
  // Admin changes made through this process show in the user list at once.
  r.use('/servers', (req, _res, next) => {
    if (req.method !== 'GET') available.invalidate();
    next();
  });

  r.get(
    '/servers',
    route(async (req, res) => {
      const q = parse(listServersQuery, req.query, 'query');
      const servers = await prisma.workspaceServer.findMany({
        where: q.status ? { status: q.status } : {},
        orderBy: { hostname: 'asc' },
        take: q.limit,
        skip: q.offset,
      });
      const ids = servers.map((s) => s.id);
      const maint = await inMaintenanceNow(prisma, ids);
      res.json({ servers: servers.map((s) => toServerView(s, maint.has(s.id), settings.overcommit)) });
    }),
  );

  r.post(
    '/servers',
    route(async (req, res) => {
      const body = parse(createServerBody, req.body);
      const actor = principal(res).id;
      const strict = body.strict ?? settings.strictAudit;
      if (await prisma.workspaceServer.findUnique({ where: { hostname: body.hostname }, select: { id: true } })) {
        throw conflict(`a server with hostname ${body.hostname} already exists`);
      }
      const server = await prisma.$transaction(async (tx) => {
        const s = await tx.workspaceServer.create({
          data: {
            name: body.name,
            hostname: body.hostname,
            ipAddress: body.ipAddress,
            privateAddress: body.privateAddress,
            dockerPort: body.dockerPort,
            sshPort: body.sshPort,
            region: body.region,
            provider: body.provider,
            labels: body.labels,
            gpuType: body.gpuType,
            strictAudit: strict,
            status: 'pending',
            totalCpu: 0,
            totalMemoryMb: 0,
            totalDiskGb: 0,
          },
        });
        await tx.auditLog.create({ data: { actor, action: 'server.create', targetType: 'server', targetId: s.id, after: snapshot(s) ?? undefined } });
        return s;
      });
      let onboarding: Awaited<ReturnType<typeof startOnboarding>> | undefined;
      const undo = () =>
        prisma.$transaction(async (tx) => {
          const { count } = await tx.workspaceServer.deleteMany({ where: { id: server.id, status: 'pending' } });
          if (count) await tx.auditLog.create({ data: { actor, action: 'server.create.undone', targetType: 'server', targetId: server.id, after: { reason: 'onboarding did not start' } } });
          return count > 0;
        });
      await startOrUndo({ kind: 'server', id: server.id }, async () => (onboarding = await startOnboarding(server.id, strict)), undo, deps.logger);
      res.status(202).location(`/servers/${server.id}`).json({ server: await viewOf(server.id), onboarding: onboarding ?? (await startOnboarding(server.id, strict)) });
    }),
  );

  r.get(
    '/servers/:id',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const view = await viewOf(id);
      let onboarding: { workflowId: string; status: string; temporalUi: string } | null = null;
      try {
        const d = await temporal.workflow.getHandle(WORKFLOW_ID.onboardServer(id)).describe();
        onboarding = { workflowId: d.workflowId, status: d.status.name, temporalUi: ui(d.workflowId) };
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      res.json({ ...view, onboarding });
    }),
  );

  r.patch(
    '/servers/:id',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const body = parse(updateServerBody, req.body);
      const { strict, ...fields } = body;
      await prisma.$transaction(async (tx) => {
        const before = await tx.workspaceServer.findUnique({ where: { id } });
        if (!before) throw notFound('server');
        if (fields.privateAddress !== undefined && fields.privateAddress !== before.privateAddress) {
          const hosted = await tx.workspace.count({ where: { serverId: id, status: { not: 'deleted' } } });
          if (hosted > 0) throw conflict(`privateAddress: the server hosts ${hosted} workspace(s) whose ports are bound to its current address; drain it first`);
        }
        const after = await tx.workspaceServer.update({ where: { id }, data: { ...fields, ...(strict === undefined ? {} : { strictAudit: strict }) } });
        await tx.auditLog.create({
          data: { actor: principal(res).id, action: 'server.update', targetType: 'server', targetId: id, before: snapshot(before) ?? undefined, after: snapshot(after) ?? undefined },
        });
      });
      res.json(await viewOf(id));
    }),
  );

  r.delete(
    '/servers/:id',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      await prisma.$transaction(async (tx) => {
        const before = await tx.workspaceServer.findUnique({ where: { id } });
        if (!before) throw notFound('server');
        const hosted = await tx.workspace.count({ where: { serverId: id, status: { not: 'deleted' } } });
        if (hosted > 0) throw conflict(`server still hosts ${hosted} workspace(s): drain it first`);
        await tx.workspace.updateMany({ where: { serverId: id }, data: { serverId: null } });
        await tx.workspaceServer.delete({ where: { id } });
        await tx.auditLog.create({ data: { actor: principal(res).id, action: 'server.delete', targetType: 'server', targetId: id, before: snapshot(before) ?? undefined } });
      });
      await temporal.workflow
        .getHandle(WORKFLOW_ID.onboardServer(id))
        .terminate('server deleted')
        .catch(() => undefined);
      res.status(204).end();
    }),
  );

  for (const [action, cordoned] of [['cordon', true], ['uncordon', false]] as const) {
    r.post(
      `/servers/:id/${action}`,
      route(async (req, res) => {
        const { id } = parse(uuidParam, req.params, 'params');
        await prisma.$transaction(async (tx) => {
          const before = await tx.workspaceServer.findUnique({ where: { id } });
          if (!before) throw notFound('server');
          const after = await tx.workspaceServer.update({ where: { id }, data: { cordoned } });
          await tx.auditLog.create({
            data: { actor: principal(res).id, action: `server.${action}`, targetType: 'server', targetId: id, before: { cordoned: before.cordoned }, after: { cordoned: after.cordoned } },
          });
        });
        res.json(await viewOf(id));
      }),
    );
  }

  /** Runs onboarding again, e.g. after the daemon was fixed (the same workflow id while one runs). */
  r.post(
    '/servers/:id/onboard',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const s = await prisma.workspaceServer.findUnique({ where: { id } });
      if (!s) throw notFound('server');
      const onboarding = await startOnboarding(id, s.strictAudit);
      await prisma.auditLog.create({ data: { actor: principal(res).id, action: 'server.onboard', targetType: 'server', targetId: id, before: { status: s.status } } });
      res.status(202).json({ onboarding });
    }),
  );

  /** Starts draining the server (admins): the drain workflow's id derives from the server's. */
  r.post(
    '/servers/:id/drain',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const body = parse(drainBody, req.body);
      const s = await prisma.workspaceServer.findUnique({ where: { id } });
      if (!s) throw notFound('server');
      if (s.status === 'drained') throw conflict('the server is drained already');
      const workflowId = WORKFLOW_ID.drainServer(id);
      const maxParallel = body.maxParallel ?? settings.migrationMaxParallel;
      await temporal.workflow.start(drainServerWorkflow, {
        taskQueue: settings.taskQueue,
        workflowId,
        args: [{ serverId: id, deadline: body.deadline, maxParallel, onDeadline: body.onDeadline, strategy: body.strategy, holdHealthyMs: settings.migrationHoldHealthyMs, paused: body.paused }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: [
          { key: SERVER_ID, value: id },
          { key: PHASE, value: 'cordoning' },
        ],
      });
      await prisma.auditLog.create({ data: { actor: principal(res).id, action: 'server.drain', targetType: 'server', targetId: id, before: { status: s.status }, after: { ...body, maxParallel } } });
      res.status(202).json({ workflowId, temporalUi: `${settings.temporalUiUrl}/namespaces/${settings.namespace}/workflows/${workflowId}` });
    }),
  );

  /**
   * A copy in progress as its activity last heartbeated it: bytes read and sent so far, and
   * why a retry is waiting (the last attempt's error, e.g. the target is unreachable).
   */
  async function liveCopy(child: WorkflowHandle, m: MigrationState): Promise<Partial<MigrationState> & { copyAttempt?: number; sentBytes?: number }> {
    const d = await child.describe().catch(() => undefined);
    const act = d?.raw.pendingActivities?.find((a) => a.activityType?.name === 'copyVolume');
    if (!act) return {};
    const p = act.heartbeatDetails?.payloads?.[0];
    // Heartbeat details pass through the payload codec like every other payload (encrypted at rest).
    const beat = (p ? await decodeOptionalSinglePayload<{ bytes?: number; sentBytes?: number; resumedBytes?: number }>(temporal.options.loadedDataConverter, p) : undefined) ?? {};
    const lastError = act.lastFailure?.message;
    return {
      bytesCopied: beat.bytes ?? m.bytesCopied,
      sentBytes: beat.sentBytes ?? beat.bytes ?? 0,
      resumedBytes: beat.resumedBytes ?? 0,
      copyAttempt: act.attempt ?? 1,
      blocked: m.blocked ?? (lastError ? `copy attempt ${act.attempt} after: ${lastError}` : null),
    };
  }

  /** The drain's progress: each workspace's phase and bytes copied (from its migration), and why anything waits. */
  r.get(
    '/servers/:id/drain',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const handle = temporal.workflow.getHandle(WORKFLOW_ID.drainServer(id));
      let drain: DrainState;
      let status: string;
      try {
        const d = await handle.describe();
        status = d.status.name;
        drain = await queryWorkflow(temporal, handle, drainStateQuery, d);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw notFound('drain');
        throw unanswered(err, 'drain');
      }
      const workspaces = await Promise.all(
        drain.workspaces.map(async (w) => {
          if (w.phase !== 'migrating') return w;
          const child = temporal.workflow.getHandle(`${WORKFLOW_ID.migrateWorkspace(w.workspaceId)}-drain-${w.attempts - 1}`);
          const m = await askWorkflow(temporal, () => child.query(migrationStateQuery)).catch(() => undefined);
          if (!m) return w;
          const view = { ...w, migrationPhase: m.phase, bytesCopied: m.bytesCopied, resumedBytes: m.resumedBytes, targetServerId: m.targetServerId, blocked: m.blocked };
          return m.phase === 'copying' ? { ...view, ...(await liveCopy(child, m)) } : view;
        }),
      );
      res.json({ ...drain, workspaces, workflowStatus: status, workflowId: handle.workflowId, temporalUi: ui(handle.workflowId) });
    }),
  );

  r.post(
    '/servers/:id/drain/:action',
    route(async (req, res) => {
      const { id, action } = parse(drainActionParams, req.params, 'params');
      const signal = { pause: pauseDrainSignal, resume: resumeDrainSignal, cancel: cancelDrainSignal }[action];
      try {
        await temporal.workflow.getHandle(WORKFLOW_ID.drainServer(id)).signal(signal);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw conflict('the server has no drain in progress');
        throw err;
      }
      await prisma.auditLog.create({ data: { actor: principal(res).id, action: `server.drain.${action}`, targetType: 'server', targetId: id } });
      res.status(202).json({ signalled: action });
    }),
  );

  r.post(
    '/servers/:id/maintenance',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const body = parse(maintenanceBody, req.body);
      const w = await prisma.$transaction(async (tx) => {
        if (!(await tx.workspaceServer.findUnique({ where: { id }, select: { id: true } }))) throw notFound('server');
        const created = await tx.maintenanceWindow.create({
          data: { serverId: id, startsAt: body.startsAt ? new Date(body.startsAt) : new Date(), endsAt: new Date(body.endsAt), reason: body.reason, createdBy: principal(res).id },
        });
        await tx.auditLog.create({ data: { actor: principal(res).id, action: 'server.maintenance.schedule', targetType: 'server', targetId: id, after: snapshot(created) ?? undefined } });
        return created;
      });
      res.status(201).json(windowView(w));
    }),
  );

  r.get(
    '/servers/:id/maintenance',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      if (!(await prisma.workspaceServer.findUnique({ where: { id }, select: { id: true } }))) throw notFound('server');
      const windows = await prisma.maintenanceWindow.findMany({ where: { serverId: id, endsAt: { gt: new Date() } }, orderBy: { startsAt: 'asc' } });
      res.json({ windows: windows.map(windowView) });
    }),
  );

  r.delete(
    '/servers/:id/maintenance/:windowId',
    route(async (req, res) => {
      const { id, windowId } = parse(windowParams, req.params, 'params');
      await prisma.$transaction(async (tx) => {
        const w = await tx.maintenanceWindow.findFirst({ where: { id: windowId, serverId: id } });
        if (!w) throw notFound('maintenance window');
        await tx.maintenanceWindow.delete({ where: { id: windowId } });
        await tx.auditLog.create({ data: { actor: principal(res).id, action: 'server.maintenance.cancel', targetType: 'server', targetId: id, before: snapshot(w) ?? undefined } });
      });
      res.status(204).end();
    }),
  );

  return r;
}

function windowView(w: { id: string; serverId: string; startsAt: Date; endsAt: Date; reason: string | null; createdBy: string }) {
  return { id: w.id, serverId: w.serverId, startsAt: w.startsAt.toISOString(), endsAt: w.endsAt.toISOString(), reason: w.reason, createdBy: w.createdBy };
}
