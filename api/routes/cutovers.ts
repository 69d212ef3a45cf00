import { Router } from 'express';
import { WorkflowNotFoundError } from '@temporalio/client';
import { PHASE } from '../../lib/constants';
import { cutoverWorkflow } from '../../workflows';
import { approveSignal, cutoverStateQuery, rollbackSignal } from '../../workflows/cutover';
import type { ApiDeps } from '../app';
import { principal, requireAdmin } from '../auth';
import { conflict, notFound, parse, route } from '../errors';
import { cutoverBody, cutoverIdParam, rollbackBody } from '../schemas';
import { queryWorkflow } from '../workflow-queries';

/** The GCP → self-hosted cutover (admin only): start, follow, approve, roll back. */
export function cutoversRouter(deps: ApiDeps): Router {
  const { prisma, temporal, settings } = deps;
  const r = Router();
  const ui = (id: string) => `${settings.temporalUiUrl}/namespaces/${settings.namespace}/workflows/${id}`;
  r.use('/cutovers', requireAdmin);

  r.post(
    '/cutovers',
    route(async (req, res) => {
      // The schema also checks the records against each other (domain/cutover planProblems).
      const plan = parse(cutoverBody, req.body);
      const workflowId = `cutover-${plan.zoneId}`;
      await temporal.workflow
        .start(cutoverWorkflow, { taskQueue: settings.taskQueue, workflowId, args: [plan], typedSearchAttributes: [{ key: PHASE, value: 'preflight' }] })
        .catch((err: Error) => {
          if (err.name === 'WorkflowExecutionAlreadyStartedError') throw conflict(`a cutover of zone ${plan.zoneId} is already running`);
          throw err;
        });
      await prisma.auditLog.create({ data: { actor: principal(res).id, action: 'cutover.start', targetType: 'zone', targetId: plan.zoneId, after: plan } });
      res.status(202).location(`/cutovers/${workflowId}`).json({ id: workflowId, temporalUi: ui(workflowId) });
    }),
  );

  r.get(
    '/cutovers/:id',
    route(async (req, res) => {
      const { id } = parse(cutoverIdParam, req.params, 'params');
      const handle = temporal.workflow.getHandle(id);
      try {
        const d = await handle.describe();
        // Null when no worker is running it now (at once), or it does not answer in time.
        const state = await queryWorkflow(temporal, handle, cutoverStateQuery, d).catch(() => null);
        res.json({ id, workflowStatus: d.status.name, startedAt: d.startTime.toISOString(), closedAt: d.closeTime?.toISOString() ?? null, state, temporalUi: ui(id) });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw notFound('cutover');
        throw err;
      }
    }),
  );

  const signal = (name: 'approve' | 'rollback') =>
    route(async (req, res) => {
      const { id } = parse(cutoverIdParam, req.params, 'params');
      const body = name === 'rollback' ? parse(rollbackBody, req.body ?? {}) : {};
      const by = principal(res).id;
      const handle = temporal.workflow.getHandle(id);
      try {
        const d = await handle.describe();
        if (d.status.name !== 'RUNNING') throw conflict(`the cutover has ended (${d.status.name.toLowerCase()})`);
        if (name === 'approve') await handle.signal(approveSignal, { by });
        else await handle.signal(rollbackSignal, { by, reason: (body as { reason?: string }).reason });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw notFound('cutover');
        throw err;
      }
      await prisma.auditLog.create({ data: { actor: by, action: `cutover.${name}`, targetType: 'cutover', targetId: id, after: body } });
      res.status(202).json({ id, signalled: name });
    });
  r.post('/cutovers/:id/approve', signal('approve'));
  r.post('/cutovers/:id/rollback', signal('rollback'));
  return r;
}
