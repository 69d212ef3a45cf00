import { createHash } from 'node:crypto';
import { Router, type Response } from 'express';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { PHASE, SERVER_ID, WORKFLOW_ID, WORKSPACE_ID } from '../../lib/constants';
import type { Workspace } from '../../lib/prisma';
import { workspaceUrl } from '../../domain/workspace-routes';
import { migrateWorkspaceWorkflow, workspaceWorkflow } from '../../workflows';
import { deleteUpdate, restartUpdate, startUpdate, stopUpdate, workspaceStateQuery } from '../../workflows/workspace';
import type { ApiDeps } from '../app';
import { principal, requireAdmin } from '../auth';
import { HttpError, notFound, parse, route } from '../errors';
import { whenGone, type WorkspaceEvents } from '../events';
import { startOrUndo } from '../workflow-start';
import { unavailableDependency } from '../../lib/unavailable';
import { createWorkspaceBody, createWorkspaceQuery, deleteWorkspaceQuery, listWorkspacesQuery, migrateWorkspaceBody, uuidParam } from '../schemas';
import { refusal } from '../../domain/quotas';
import { TIERS, type TierName } from '../../domain/tiers';
import { cpuLimit } from '../../domain/container-spec';
import { limitsOf, oneAtATime } from './user-limits';
import { reasonForUser } from '../../domain/status-reasons';
import { queryWorkflow, requireWorker } from '../workflow-queries';
import { checkPlacement, placementError, storedRefusalError, type Wanted } from '../placement-check';

/** A status event as its owner sees it: the reason in short form. */
function forUser(data: string): string {
  const e = JSON.parse(data) as { status: string; reason?: string | null };
  return JSON.stringify({ ...e, reason: reasonForUser(e.status, e.reason) });
}

/** Loaded with a workspace for its view: its server's real CPU count, which caps the container's CPU limit. */
const withHostCpus = { server: { select: { hostCpus: true } } } as const;
type WorkspaceWithHost = Workspace & { server?: { hostCpus: number | null } | null };

export function toWorkspaceView(w: WorkspaceWithHost, baseUrl: string) {
  const published = (w.publishedPorts ?? {}) as Record<string, number>;
  const tierCpu = TIERS[w.tier as TierName]?.cpu ?? w.assignedCpu ?? 0;
  const hostCpus = w.server?.hostCpus ?? null;
  return {
    id: w.id,
    ownerId: w.ownerId,
    name: w.name,
    tier: w.tier,
    status: w.status,
    statusReason: w.statusReason,
    serverId: w.serverId,
    containerName: w.containerName,
    volumeName: w.volumeName,
    networkName: w.networkName,
    internalIp: w.internalIp,
    httpPort: w.httpPort,
    sshPort: w.sshPort,
    url: workspaceUrl(baseUrl, w.id),
    previews: w.previewPorts.map((port) => ({ port, url: workspaceUrl(baseUrl, w.id, port), hostPort: published[String(port)] ?? null })),
    assigned: { cpu: w.assignedCpu, memoryMb: w.assignedMemoryMb, diskGb: w.assignedDiskGb },
    cpuLimit: { tier: tierCpu, applied: cpuLimit(tierCpu, hostCpus), hostCpus },
    diskLimit: w.diskLimit,
    createdAt: w.createdAt.toISOString(),
    updatedAt: w.updatedAt.toISOString(),
  };
}

/** A caller's Idempotency-Key becomes the workspace id: the same request is the same workspace and workflow. */
export function idFromKey(owner: string, key: string): string {
  const h = createHash('sha256').update(`${owner}\0${key}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const FINAL = ['running', 'failed', 'stopped', 'deleted'];

/** Workspaces: create (placement + provisioning workflow), lifecycle updates, events. */
export function workspacesRouter(deps: ApiDeps & { events: WorkspaceEvents }): Router {
  const { prisma, temporal, settings, events } = deps;
  const r = Router();
  /** Users read their workspace's status reason in short form (the stored one can name servers and engines). */
  const view = (w: WorkspaceWithHost, res: Response) => {
    const v = toWorkspaceView(w, settings.workspaceBaseUrl);
    return principal(res).role === 'admin' ? v : { ...v, statusReason: reasonForUser(w.status, w.statusReason) };
  };

  /** The workspace if the caller may see it (users: their own; admins: all). 404 otherwise. */
  async function visible(res: Response, id: string): Promise<WorkspaceWithHost> {
    const p = principal(res);
    const w = await prisma.workspace.findUnique({ where: { id }, include: withHostCpus });
    if (!w || (p.role !== 'admin' && w.ownerId !== p.id)) throw notFound('workspace');
    return w;
  }

  /**
   * Watches a workspace until its status is final: woken by its status events on Redis,
   * with a slow poll of the database in case an event is missed. Close it when done.
   */
  async function watchStatus(id: string) {
    let wake: () => void = () => undefined;
    // Without Redis the watch still ends: by the poll below, a second later at most.
    const unsubscribe = await events
      .subscribe(id, (message) => {
        if (FINAL.includes((JSON.parse(message) as { status: string }).status)) wake();
      })
      .catch(() => () => undefined);
    return {
      async settled(ms: number): Promise<WorkspaceWithHost> {
        const deadline = Date.now() + ms;
        for (;;) {
          const woke = new Promise<void>((r) => (wake = r));
          const ws = (await prisma.workspace.findUnique({ where: { id }, include: withHostCpus }))!;
          if (FINAL.includes(ws.status) || Date.now() > deadline) return ws;
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([woke, new Promise((r) => (timer = setTimeout(r, 1_000)))]);
          clearTimeout(timer);
        }
      },
      close: unsubscribe,
    };
  }

  r.post(
    '/workspaces',
    route(async (req, res) => {
      const body = parse(createWorkspaceBody, req.body);
      const q = parse(createWorkspaceQuery, req.query, 'query');
      const owner = principal(res).id;
      const key = req.get('idempotency-key');
      const id = key ? idFromKey(owner, key) : undefined;
      const constraints = { ...(body.constraints ?? {}), ...(body.server !== 'auto' ? { serverId: body.server } : {}) };
      const isAdmin = principal(res).role === 'admin';
      // Images are admins' until templates bring image entitlements.
      if (body.image !== undefined && !isAdmin) throw new HttpError(403, 'forbidden', 'image: only admins choose a workspace image', { field: 'image' });
      let ws = id ? await prisma.workspace.findUnique({ where: { id } }) : null;
      // Whether this request wrote the row (not found it): only then is it this request's to undo.
      let inserted = false;
      // One create at a time per user, so concurrent requests cannot all pass the same count.
      const createOne = () => prisma.$transaction(async (tx) => {
        if (!isAdmin) {
          await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`podex:user-quota:${owner}`}))`;
          const again = id ? await tx.workspace.findUnique({ where: { id } }) : null;
          if (again) return again;
          const { plan, limits, usage } = await limitsOf(tx, owner, settings.defaultPlan);
          const no = refusal(limits, plan, usage, { tier: body.tier as TierName, gpus: body.constraints?.gpu?.count ?? 0, pinned: body.server !== 'auto' });
          if (no?.kind === 'entitlement') throw new HttpError(403, 'forbidden', no.message, { field: no.field });
          if (no) throw new HttpError(403, 'quota_exceeded', no.message, { limit: no.limit, max: no.max, used: no.used, asked: no.asked });
        }
        // What no server could ever take, or none can take now, is refused here, before a row exists.
        const unplaceable = await checkPlacement(tx, { ...body, serverId: body.server !== 'auto' ? body.server : undefined }, settings.overcommit);
        if (unplaceable) throw placementError(unplaceable, { admin: isAdmin });
        const made = await tx.workspace.create({
          data: { ...(id ? { id } : {}), ownerId: owner, name: body.name, tier: body.tier, strategy: body.strategy, image: body.image, previewPorts: body.previewPorts, constraints, status: 'pending' },
        });
        inserted = true;
        return made;
      }, { maxWait: 10_000, timeout: 10_000 });
      ws ??= isAdmin ? await createOne() : await oneAtATime(`quota:${owner}`, createOne);
      const workflowId = WORKFLOW_ID.workspace(ws.id);
      // Subscribed before the start, so the final status cannot slip past between the two.
      const watch = q.wait === 'true' ? await watchStatus(ws.id) : undefined;
      const wsId = ws.id;
      try {
        const start = () =>
          temporal.workflow.start(workspaceWorkflow, {
            taskQueue: settings.taskQueue,
            workflowId,
            args: [{ workspaceId: wsId, defaultImage: settings.workspaceImage }],
            workflowIdConflictPolicy: 'USE_EXISTING',
            // A row just written can have had only an earlier attempt's workflow, one whose row was undone
            // (below) and which then failed on finding none: start afresh over it.
            workflowIdReusePolicy: inserted ? 'ALLOW_DUPLICATE_FAILED_ONLY' : 'REJECT_DUPLICATE',
            typedSearchAttributes: [{ key: WORKSPACE_ID, value: wsId }],
          }).catch((err: Error) => {
            // A finished workflow under this id is the same workspace asked for again.
            if (err.name !== 'WorkflowExecutionAlreadyStartedError') throw err;
          });
        const undo = async () => (await prisma.workspace.deleteMany({ where: { id: wsId, status: 'pending' } })).count > 0;
        // A row found (the same Idempotency-Key again) is not this request's to remove: its failed start just fails.
        if (inserted) await startOrUndo({ kind: 'workspace', id: wsId }, start, undo, deps.logger);
        else await start();
        if (watch) {
          ws = await watch.settled(120_000);
          if (ws.status === 'failed') {
            const shown = view(ws, res);
            const message = shown.statusReason ?? 'provisioning failed';
            // A placement the fleet no longer allowed once the workflow ran is answered as the check above would.
            throw storedRefusalError(ws.statusReason, message, { workspace: shown }) ?? new HttpError(502, 'provisioning_failed', message, { workspace: shown });
          }
          res.status(ws.status === 'running' ? 201 : 202).json({ workspace: view(ws, res), workflowId });
          return;
        }
      } finally {
        watch?.close();
      }
      res.status(202).location(`/workspaces/${ws.id}`).json({ workspace: view(ws, res), workflowId });
    }),
  );

  r.get(
    '/workspaces',
    route(async (req, res) => {
      const q = parse(listWorkspacesQuery, req.query, 'query');
      const p = principal(res);
      const owner = p.role === 'admin' ? q.owner : p.id;
      const rows = await prisma.workspace.findMany({
        where: { ...(owner ? { ownerId: owner } : {}), ...(q.status ? { status: q.status } : { status: { not: 'deleted' } }) },
        orderBy: { createdAt: 'desc' },
        take: q.limit,
        skip: q.offset,
        include: withHostCpus,
      });
      res.json({ workspaces: rows.map((w) => view(w, res)) });
    }),
  );

  r.get(
    '/workspaces/:id',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const w = await visible(res, id);
      let progress = null;
      try {
        progress = await queryWorkflow(temporal, temporal.workflow.getHandle(WORKFLOW_ID.workspace(id)), workspaceStateQuery);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) progress = { unavailable: (err as Error).message };
      }
      // The workflow's state holds the engine's address (its endpoint) and the operator's failure reason.
      if (progress && principal(res).role !== 'admin') {
        progress = 'unavailable' in progress ? { unavailable: 'the workspace workflow did not answer' } : { ...progress, endpoint: null, error: reasonForUser('failed', progress.error) };
      }
      res.json({ ...view(w, res), progress });
    }),
  );

  const updates = { start: startUpdate, stop: stopUpdate, restart: restartUpdate } as const;
  for (const [action, update] of Object.entries(updates)) {
    r.post(
      `/workspaces/:id/${action}`,
      route(async (req, res) => {
        const { id } = parse(uuidParam, req.params, 'params');
        const w = await visible(res, id);
        // Its workflow takes commands once provisioning is over: until then the update would wait that long (with no worker, for ever).
        if (w.status === 'pending' || w.status === 'provisioning') throw new HttpError(409, 'conflict', `the workspace is ${w.status}: try again when it is running`);
        // As its workflow would refuse them, without asking it.
        if (w.status === 'deleted' || w.status === 'failed') throw new HttpError(409, 'conflict', `the workspace is ${w.status}`);
        const handle = temporal.workflow.getHandle(WORKFLOW_ID.workspace(id));
        await runUpdate(async () => {
          await requireWorker(handle, 'workspace');
          return handle.executeUpdate(update);
        });
        res.json(view(await visible(res, id), res));
      }),
    );
  }

  r.delete(
    '/workspaces/:id',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const q = parse(deleteWorkspaceQuery, req.query, 'query');
      const w = await visible(res, id);
      // Nothing runs for a failed workspace (provisioning compensated) or a pending one (provisioning refuses a
      // deleted row). Conditional, so a workspace whose provisioning began meanwhile goes through its workflow.
      const gone = w.status === 'failed' || w.status === 'pending' ? await prisma.workspace.updateMany({ where: { id, status: w.status }, data: { status: 'deleted' } }) : { count: 0 };
      if (gone.count === 0 && w.status !== 'deleted') {
        const handle = temporal.workflow.getHandle(WORKFLOW_ID.workspace(id));
        await runUpdate(async () => {
          await requireWorker(handle, 'workspace');
          return handle.executeUpdate(deleteUpdate, { args: [{ keepVolume: q.keepVolume === 'true' }] });
        });
      }
      res.status(204).end();
    }),
  );

  /**
   * Moves one workspace and its data to another server (placement chooses unless the
   * caller names one): the same migration workflow a drain runs for each workspace.
   * 202 with the workflow id, or the result with ?wait=true.
   */
  r.post(
    '/workspaces/:id/migrate',
    requireAdmin,
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const body = parse(migrateWorkspaceBody, req.body ?? {});
      const q = parse(createWorkspaceQuery, req.query, 'query');
      const w = await visible(res, id);
      if (w.status !== 'running' && w.status !== 'stopped') throw new HttpError(409, 'conflict', `a ${w.status} workspace cannot be migrated`);
      if (body.targetServer && body.targetServer === w.serverId) throw new HttpError(400, 'bad_request', 'targetServer: the workspace is on that server already', { field: 'targetServer' });
      const wanted = { tier: w.tier, strategy: body.strategy ?? w.strategy, serverId: body.targetServer, constraints: w.constraints as Wanted['constraints'], avoid: w.serverId ? [w.serverId] : [] };
      const unplaceable = await checkPlacement(prisma, wanted, settings.overcommit);
      if (unplaceable) throw placementError(unplaceable, { admin: true, serverField: 'targetServer' });
      const workflowId = WORKFLOW_ID.migrateWorkspace(id);
      const handle = await temporal.workflow.start(migrateWorkspaceWorkflow, {
        taskQueue: settings.taskQueue,
        workflowId,
        args: [{ workspaceId: id, targetServerId: body.targetServer, strategy: body.strategy, maxParallel: settings.migrationMaxParallel, mode: 'live', holdHealthyMs: settings.migrationHoldHealthyMs }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: [
          { key: WORKSPACE_ID, value: id },
          { key: SERVER_ID, value: w.serverId ?? '' },
          { key: PHASE, value: 'waiting-for-slot' },
        ],
      });
      await prisma.auditLog.create({ data: { actor: principal(res).id, action: 'workspace.migrate', targetType: 'workspace', targetId: id, before: { serverId: w.serverId }, after: { targetServer: body.targetServer ?? 'auto' } } });
      if (q.wait === 'true') {
        const result = await handle.result();
        const details = { migration: result, workflowId, workspace: view(await visible(res, id), res) };
        if (result.outcome !== 'moved') {
          const refused = storedRefusalError(result.error, result.error ?? '', details);
          if (refused) throw refused;
        }
        res.status(result.outcome === 'moved' ? 200 : 409).json(details);
        return;
      }
      res.status(202).json({ workflowId });
    }),
  );

  /** Status changes as server-sent events: the current status first, then each change. */
  r.get(
    '/workspaces/:id/events',
    route(async (req, res) => {
      const client = whenGone(res);
      const { id } = parse(uuidParam, req.params, 'params');
      const w = await visible(res, id);
      if (client.gone()) return;
      const release = events.claimStream(principal(res).id, settings.sseMaxPerUser);
      if (!release) throw new HttpError(429, 'too_many_streams', `at most ${settings.sseMaxPerUser} open event streams per user; close one first`);
      client.hold(release);
      const admin = principal(res).role === 'admin';
      const send = (data: string) => res.write(`event: status\ndata: ${admin ? data : forUser(data)}\n\n`);
      // Subscribed before the 200, so a stream Redis cannot carry is a 503 (RedisUnavailableError), not an empty stream.
      client.hold(await events.subscribe(id, send));
      if (client.gone()) return;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      send(JSON.stringify({ workspaceId: id, status: w.status, reason: w.statusReason, at: w.updatedAt.toISOString() }));
      const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      client.hold(() => clearInterval(keepAlive));
    }),
  );

  return r;
}

async function runUpdate(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new HttpError(409, 'conflict', 'the workspace has no running lifecycle workflow');
    if (err instanceof WorkflowUpdateFailedError) throw new HttpError(409, 'conflict', (err.cause as Error | undefined)?.message ?? err.message);
    // Our own deadline on a server that does not answer: Temporal is unavailable (a 503), the workflow did not time out.
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError && !unavailableDependency(err)) throw new HttpError(504, 'timeout', 'the workspace did not answer in time');
    throw err;
  }
}
