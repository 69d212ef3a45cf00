import { CancellationScope, log } from '@temporalio/workflow';

/** One step that undoes earlier work (remove a container, release a reservation, …). */
export interface Undo {
  step: string;
  run: () => Promise<unknown>;
}

/**
 * Runs the undo steps newest-first, shielded from cancellation. A step that fails is logged
 * and the others still run: leaving one leftover is better than leaving all of them.
 */
export async function undoAll(steps: readonly Undo[], what: string): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    for (const u of [...steps].reverse()) {
      try {
        await u.run();
      } catch (e) {
        log.warn(`${what}: an undo step failed; continuing`, { step: u.step, error: (e as Error).message });
      }
    }
  });
}
