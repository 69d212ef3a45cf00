import { isGrpcDeadlineError, type Client, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import type { QueryDefinition } from '@temporalio/common';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { HttpError } from './errors';

/**
 * How long a request waits for a workflow to answer a query. A worker answers in milliseconds;
 * with none polling the workflow's task queue (workers down, or a backlog) Temporal holds the
 * query until the call's deadline, and the request must not hang that long.
 */
export const QUERY_DEADLINE_MS = 2_000;
/**
 * A workflow task no worker has taken for this long means none is taking them: a live worker takes
 * one in milliseconds, a busy one (a loaded machine, a burst of tasks) within a few seconds.
 */
const UNTAKEN_TASK_MS = 5_000;

/** No worker is running the workflow: a task of its waits untaken, so a query would wait behind it. */
export class NoWorkerError extends Error {
  override name = 'NoWorkerError';
}

/**
 * Whether the workflow has a task no worker has taken for a while. Temporal answers a query
 * only once such a task is done: the query would wait for a worker however long none comes (a
 * workflow no worker ever ran has its first task waiting so, and so does one signalled since).
 */
export function waitsForWorker(d: WorkflowExecutionDescription, now = Date.now()): boolean {
  const task = d.raw.pendingWorkflowTask;
  if (!task || task.state !== temporal.api.enums.v1.PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED) return false;
  const since = optionalTsToMs(task.originalScheduledTime) ?? optionalTsToMs(task.scheduledTime) ?? now;
  return now - since > UNTAKEN_TASK_MS;
}

/** Runs a workflow query (`fn`) with {@link QUERY_DEADLINE_MS} as its deadline. */
export function askWorkflow<R>(client: Client, fn: () => Promise<R>): Promise<R> {
  return client.withDeadline(Date.now() + QUERY_DEADLINE_MS, fn);
}

/**
 * Queries a workflow within {@link QUERY_DEADLINE_MS}, or fails at once with NoWorkerError when
 * no worker is taking its tasks. A missing workflow is Temporal's WorkflowNotFoundError, as for any call.
 */
export async function queryWorkflow<R>(client: Client, handle: WorkflowHandle, query: QueryDefinition<R, []>, described?: WorkflowExecutionDescription): Promise<R> {
  const d = described ?? (await handle.describe());
  if (waitsForWorker(d)) throw new NoWorkerError(`workflow ${handle.workflowId} is waiting for a worker: none has taken its task`);
  return askWorkflow(client, () => handle.query(query));
}

/**
 * Fails at once (503, via {@link unanswered}) when no worker is running the workflow: an update
 * (a lifecycle command) would otherwise wait for one, as long as that takes.
 */
export async function requireWorker(handle: WorkflowHandle, what: string): Promise<void> {
  if (waitsForWorker(await handle.describe())) throw unanswered(new NoWorkerError(`workflow ${handle.workflowId} is waiting for a worker`), what);
}

/** The answer for a query no worker answered (none running it, or out of time): 503, try again; any other error is passed on. */
export function unanswered(err: unknown, what: string): unknown {
  if (err instanceof NoWorkerError || isGrpcDeadlineError(err)) return new HttpError(503, 'unavailable', `the ${what} workflow did not answer: no worker is running it now; try again`);
  return err;
}
