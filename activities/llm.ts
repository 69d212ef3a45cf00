import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Prisma } from '../lib/prisma';
import { LlmError, type ChatRequest, type LlmRouter } from '../lib/llm';
import type { PrismaClient } from '../lib/prisma';

export interface LlmDeps {
  prisma: PrismaClient;
  llm: LlmRouter;
}

export interface JobOutcome {
  jobId: string;
  provider: string;
  model: string;
  costUsd: string;
  finishReason: string | null;
}

/** Durable completions and the price catalog. Users' keys are opened inside the router, never passed in. */
export function createLlmActivities({ prisma, llm }: LlmDeps) {
  return {
    /**
     * One agent job's completion. A finished job answers from its record (no second call);
     * otherwise the router calls the provider with fallback, stores the answer under the job's id
     * before billing under it, so a retry after the provider answered reuses that answer and is
     * billed once. A bad request, no credit or an unreadable key is not retried.
     */
    async runLlmJob(jobId: string, userId: string, request: ChatRequest): Promise<JobOutcome> {
      const done = await prisma.llmJob.findUnique({ where: { id: jobId } });
      if (done?.status === 'succeeded') return (done.result as unknown as { outcome: JobOutcome }).outcome;
      const beat = setInterval(() => Context.current().heartbeat(), 2_000);
      try {
        const { completion, attempt, costUsd } = await llm.complete(userId, request, { idempotencyKey: jobId, signal: Context.current().cancellationSignal });
        const outcome: JobOutcome = { jobId, provider: attempt.provider, model: attempt.model, costUsd, finishReason: completion.choices[0]?.finish_reason ?? null };
        await prisma.llmJob.update({
          where: { id: jobId },
          data: { status: 'succeeded', result: { outcome, completion } as unknown as Prisma.InputJsonValue, error: null, finishedAt: new Date() },
        });
        // The job's record holds the answer now; the copy kept for retries can go.
        await llm.forgetAnswer(jobId);
        return outcome;
      } catch (err) {
        if (err instanceof LlmError && err.status < 500) throw ApplicationFailure.nonRetryable(err.message, `Llm${err.status}`);
        throw err;
      } finally {
        clearInterval(beat);
      }
    },

    async failLlmJob(jobId: string, error: string): Promise<void> {
      await prisma.llmJob.update({ where: { id: jobId }, data: { status: 'failed', error, finishedAt: new Date() } });
    },

    /** OpenRouter's catalog prices into llm_model_prices (the daily schedule); expired credit holds go too. */
    async syncModelPrices(): Promise<number> {
      await llm.ledger.sweep();
      return llm.syncPrices();
    },
  };
}
