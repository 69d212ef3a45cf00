import { randomUUID } from 'node:crypto';
import { Router, type NextFunction, type Request, type Response } from 'express';
import { WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import { BYOK_PROVIDERS, MODELS, type ByokProvider } from '../../domain/llm';
import { LlmError, type ChatRequest, type LlmRouter } from '../../lib/llm';
import { BalanceLimitExceeded, IdempotencyKeyReused, MAX_BALANCE_USD } from '../../lib/llm-ledger';
import { llmJobWorkflow } from '../../workflows';
import type { ApiDeps } from '../app';
import { startOrUndo } from '../workflow-start';
import { principal, requireAdmin } from '../auth';
import { check, HttpError, listProblems, type Where } from '../errors';
import { INT32_MAX, intIn, numberIn, SAFE_INT_MAX, userIdParam } from '../schemas';

const message = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
    content: z.union([z.string(), z.array(z.record(z.string(), z.unknown())), z.null()]).optional(),
    name: z.string().optional(),
    tool_calls: z.array(z.record(z.string(), z.unknown())).optional(),
    tool_call_id: z.string().optional(),
  })
  .strict();
export const chatBody = z
  .object({
    model: z
      .string()
      .min(1)
      .max(255)
      .meta({ description: 'a model GET /v1/models lists (its id, or its OpenRouter id)', examples: MODELS.map((m) => m.alias) }),
    messages: z.array(message).min(1).max(1000),
    stream: z.boolean().optional(),
    temperature: numberIn(0, 2).optional(),
    top_p: numberIn(0, 1).optional(),
    // Token counts are Int columns (llm_usage, llm_model_prices).
    max_tokens: intIn(1, INT32_MAX).optional(),
    max_completion_tokens: intIn(1, INT32_MAX).optional(),
    stop: z.union([z.string(), z.array(z.string()).max(4)]).optional(),
    presence_penalty: numberIn(-2, 2).optional(),
    frequency_penalty: numberIn(-2, 2).optional(),
    seed: intIn(-SAFE_INT_MAX, SAFE_INT_MAX).optional(),
    user: z.string().max(255).optional(),
    n: z.literal(1).optional(),
    tools: z.array(z.record(z.string(), z.unknown())).optional(),
    tool_choice: z.unknown().optional(),
    response_format: z.record(z.string(), z.unknown()).optional(),
    parallel_tool_calls: z.boolean().optional(),
  })
  .strict();
export const providerParam = z.object({ provider: z.enum(BYOK_PROVIDERS, { message: `must be one of ${BYOK_PROVIDERS.join(', ')}` }) });
export const credentialBody = z
  .object({
    apiKey: z.string().min(8).max(512).optional(),
    baseUrl: z.url({ message: 'must be a URL' }).max(2048).optional(),
  })
  .strict();
export const topUpBody = z.object({ addUsd: z.string().regex(/^\d{1,6}(\.\d{1,6})?$/, 'must be a positive decimal amount such as "10.00"') }).strict();
const topUpHeaders = z.object({
  'Idempotency-Key': z.string({ message: 'header is required: a unique value per top-up, such as a UUID' }).regex(/^[\x21-\x7e]{8,255}$/, 'must be 8 to 255 printable characters'),
});

/** Checked with the body's other problems, not after them: the same object, whatever else is wrong with it. */
const isObject = (payload: { value: unknown }) => typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value);
/** What a provider needs stored: Ollama its baseUrl, the others an apiKey. */
const credentialFor = (provider: ByokProvider) =>
  credentialBody.superRefine(
    (b, ctx) => {
      if (provider === 'ollama' ? !b.baseUrl : !b.apiKey) ctx.addIssue({ code: 'custom', path: [provider === 'ollama' ? 'baseUrl' : 'apiKey'], message: provider === 'ollama' ? 'is required for ollama' : 'is required' });
    },
    { when: isObject },
  );
/** A job is polled, never streamed. */
const jobBody = chatBody.superRefine(
  (b, ctx) => {
    if (b.stream) ctx.addIssue({ code: 'custom', path: ['stream'], message: 'a job is not streamed; poll GET /v1/jobs/{id}' });
  },
  { when: isObject },
);
const topUpParams = z.object({ userId: userIdParam.shape.id });
export const jobIdParam = z.object({ id: z.string().regex(/^llm-job-[0-9a-f-]{36}$/, 'must be a job id (llm-job-<uuid>)') });

/** OpenAI's error shape, so OpenAI clients show our errors as they show theirs (the API's error handler uses it under /v1 too). */
export const openAiErrorBody = (type: string, message: string, param?: string) => ({ error: { message, type, param: param ?? null, code: type } });

function openAiError(res: Response, status: number, type: string, msg: string, param?: string) {
  res.status(status).json(openAiErrorBody(type, msg, param));
}

/**
 * Parses `input` or throws a 400 naming every problem; `param` is the first field, as OpenAI's
 * shape has room for one. A chat may hold NUL (it goes to the provider, never to PostgreSQL).
 */
function parseOr400<S extends z.ZodType>(schema: S, input: unknown, where: Where = 'body', allowNul = false): z.output<S> {
  const r = check(schema, input, where, allowNul);
  if ('data' in r) return r.data;
  throw new LlmError(400, 'invalid_request_error', listProblems(r.problems), r.problems[0].field);
}

const handle =
  (fn: (req: Request, res: Response) => Promise<unknown>) =>
  (req: Request, res: Response, next: NextFunction): void => {
    fn(req, res).catch((err: unknown) => {
      if (res.headersSent) return void res.end();
      if (err instanceof LlmError) return openAiError(res, err.status, err.type, err.message, err.param);
      if (err instanceof HttpError) return openAiError(res, err.status, err.code, err.message);
      next(err);
    });
  };

/** The OpenAI-compatible endpoint (`/v1`), users' own provider keys, credits and durable jobs. */
export function llmRouter(deps: ApiDeps & { llm: LlmRouter }): Router {
  const { llm, prisma, temporal, settings } = deps;
  const r = Router();

  r.get(
    '/v1/models',
    handle(async (_req, res) => {
      res.json({ object: 'list', data: MODELS.map((m) => ({ id: m.alias, object: 'model', created: 0, owned_by: 'podex', openrouter_id: m.openrouter })) });
    }),
  );

  r.post(
    '/v1/chat/completions',
    handle(async (req, res) => {
      const body = parseOr400(chatBody, req.body, 'body', true) as ChatRequest;
      const userId = principal(res).id;
      if (!body.stream) {
        const { completion } = await llm.complete(userId, body);
        return res.json(completion);
      }
      const abort = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) abort.abort();
      });
      let started = false;
      try {
        await llm.stream(
          userId,
          body,
          (chunk) => {
            if (!started) {
              res.status(200).set({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
              res.flushHeaders();
              started = true;
            }
            res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          },
          abort.signal,
        );
      } catch (err) {
        if (!started) throw err;
        if (!abort.signal.aborted) res.write(`data: ${JSON.stringify({ error: { message: (err as Error).message, type: 'upstream_error' } })}\n\n`);
      }
      if (!started) res.status(200).set({ 'content-type': 'text/event-stream' });
      if (!abort.signal.aborted) res.end('data: [DONE]\n\n');
    }),
  );

  r.get(
    '/v1/providers',
    handle(async (_req, res) => {
      res.json({ providers: await llm.listCredentials(principal(res).id) });
    }),
  );
  r.put(
    '/v1/providers/:provider',
    handle(async (req, res) => {
      const { provider } = parseOr400(providerParam, req.params, 'params');
      const body = parseOr400(credentialFor(provider), req.body);
      await llm.setCredential(principal(res).id, provider, body);
      res.status(204).end();
    }),
  );
  r.delete(
    '/v1/providers/:provider',
    handle(async (req, res) => {
      const { provider } = parseOr400(providerParam, req.params, 'params');
      if (!(await llm.removeCredential(principal(res).id, provider))) throw new LlmError(404, 'not_found', `no ${provider} credential stored`, 'provider');
      res.status(204).end();
    }),
  );

  r.get(
    '/v1/credits',
    handle(async (_req, res) => {
      res.json({ balanceUsd: await llm.balance(principal(res).id) });
    }),
  );
  r.post(
    '/credits/:userId',
    requireAdmin,
    handle(async (req, res) => {
      const { userId } = parseOr400(topUpParams, req.params, 'params');
      const { addUsd } = parseOr400(topUpBody, req.body);
      // A retried top-up (a timeout, a double click) must not add the credit twice.
      const key = parseOr400(topUpHeaders, { 'Idempotency-Key': req.get('idempotency-key') }, 'headers')['Idempotency-Key'];
      try {
        const { applied, balanceUsd } = await llm.ledger.topUp(userId, addUsd, key, principal(res).id);
        if (!applied) res.set('idempotent-replayed', 'true');
        res.json({ userId, balanceUsd });
      } catch (err) {
        if (err instanceof BalanceLimitExceeded) throw new LlmError(422, 'balance_limit_exceeded', `addUsd: the balance would exceed ${MAX_BALANCE_USD} USD`, 'addUsd');
        if (!(err instanceof IdempotencyKeyReused)) throw err;
        throw new LlmError(422, 'idempotency_key_reused', 'Idempotency-Key: was already used for a top-up of another user or amount', 'Idempotency-Key');
      }
    }),
  );

  /** A durable completion: a workflow calls the provider, retrying and falling back until it has an answer. */
  r.post(
    '/v1/jobs',
    handle(async (req, res) => {
      const body = parseOr400(jobBody, req.body, 'body', true) as ChatRequest;
      const userId = principal(res).id;
      // Checked now so a bad request fails here, not in the workflow.
      await llm.route(userId, body.model);
      const id = `llm-job-${randomUUID()}`;
      await prisma.llmJob.create({ data: { id, userId } });
      // A job whose workflow did not start is removed, not left `running` for ever.
      const undo = async () => (await prisma.llmJob.deleteMany({ where: { id, status: 'running', finishedAt: null } })).count > 0;
      await startOrUndo({ kind: 'llm-job', id }, () => temporal.workflow.start(llmJobWorkflow, { taskQueue: settings.taskQueue, workflowId: id, args: [{ jobId: id, userId, request: body }] }), undo, deps.logger);
      res.status(202).location(`/v1/jobs/${id}`).json({ id, object: 'job', status: 'running' });
    }),
  );
  r.get(
    '/v1/jobs/:id',
    handle(async (req, res) => {
      const { id } = parseOr400(jobIdParam, req.params, 'params');
      const job = await prisma.llmJob.findUnique({ where: { id } });
      const p = principal(res);
      if (!job || (p.role !== 'admin' && job.userId !== p.id)) throw new LlmError(404, 'not_found', 'no such job');
      let workflowStatus: string | null = null;
      try {
        workflowStatus = (await temporal.workflow.getHandle(id).describe()).status.name;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      res.json({ id, object: 'job', status: job.status, workflowStatus, result: job.result, error: job.error, createdAt: job.createdAt.toISOString(), finishedAt: job.finishedAt?.toISOString() ?? null });
    }),
  );
  return r;
}
