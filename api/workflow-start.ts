import type { Logger } from '../lib/logger';

/**
 * Starts the workflow of a row this request has just written, and removes the row again if the
 * start fails (Temporal down or past its deadline), so a failed request leaves nothing behind: no
 * row stays `pending` with no workflow to move it on, and a retry (the same Idempotency-Key) finds
 * nothing in its way.
 *
 * Why the row first and the workflow second, undone on failure, and not the other way round: the
 * row is what the request's own checks decide (quotas and placement, under a per-user lock, in the
 * row's transaction) and what the workflow's first step reads, so it must exist before the
 * workflow runs. A failed start is ambiguous (the server may have started it and the answer been
 * lost), so `undo` removes the row only while it is still as written: a workflow that did start
 * and already moved it on keeps it, and the start counts as done. One that started but has not
 * reached its row yet finds none and ends before doing anything (its first step's WorkspaceNotFound
 * or ServerNotFoundError are non-retryable).
 *
 * `undo` answers whether it removed the row. The start's error is rethrown unless the workflow
 * turned out to hold the row; an undo that fails is logged with the row's id and the start's
 * error rethrown.
 */
export async function startOrUndo(what: { kind: string; id: string }, start: () => Promise<unknown>, undo: () => Promise<boolean>, log: Logger): Promise<void> {
  try {
    await start();
  } catch (err) {
    let undone: boolean;
    try {
      undone = await undo();
    } catch (undoErr) {
      log.error({ ...what, err: (err as Error).message, undoErr: (undoErr as Error).message }, 'workflow did not start and its row could not be removed');
      throw err;
    }
    if (undone) throw err;
    log.warn({ ...what, err: (err as Error).message }, 'workflow start reported a failure, but the workflow already holds its row: it started');
  }
}
