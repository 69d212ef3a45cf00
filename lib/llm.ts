/**
 * The LLM client layer: every provider through the `openai` SDK (OpenRouter, OpenAI,
 * Anthropic's OpenAI-compatible endpoint, a user's Ollama), routing and fallback, credit
 * checks and billing. Users' keys are opened only here, only for the call.
 */
import OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { attempts, BYOK_PROVIDERS, costOf, findModel, type Attempt, type ByokProvider, type ModelEntry } from '../domain/llm';
import type { Config } from '../domain/config';
import type { Logger } from './logger';
import type { PrismaClient } from './prisma';
import { Outbound, OutboundFailedError, OutboundRefusedError } from './safe-fetch';
import { SecretBox } from './secret-box';

export interface LlmSettings {
  openrouterApiKey?: string;
  openrouterBaseURL: string;
  referer: string;
  title: string;
  openaiBaseURL: string;
  anthropicBaseURL: string;
  markup: string;
  fallbackModels: string[];
  /** 32 bytes (hex or base64) for users' keys at rest; without it users cannot store keys. */
  encryptionKey?: string;
  /** The SDK's own retries with backoff on 429/5xx before the next fallback. */
  maxRetries: number;
  timeoutMs: number;
  /** Hosts, addresses and CIDR networks a user's provider URL may reach though not public; plain http only to these. */
  providerAllow?: readonly string[];
}

/** An error with the HTTP status and OpenAI-style type the API answers with. */
export class LlmError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

export interface Credential {
  apiKey?: string;
  baseUrl?: string;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

export type ChatRequest = Omit<ChatCompletionCreateParamsNonStreaming, 'stream' | 'stream_options'> & { stream?: boolean };

/** A user's provider URL that the outbound rules refuse (the SDK wraps what its fetch throws). */
const refusedBy = (err: unknown): OutboundRefusedError | undefined =>
  err instanceof OutboundRefusedError ? err : err instanceof OpenAI.APIConnectionError && err.cause instanceof OutboundRefusedError ? err.cause : undefined;

/** The refusal as users see it: which addresses a name has is not theirs to learn from us. */
function refusalError(r: OutboundRefusedError, provider: string): LlmError {
  if (/^(resolves to|does not resolve|must be|must not|not a URL)/.test(r.reason)) {
    const why = /^(must|not a URL)/.test(r.reason) ? r.reason : 'must resolve only to public addresses (or to a host the operator allows)';
    return new LlmError(400, 'invalid_request_error', `baseUrl: your ${provider} URL is refused: ${why}`, 'baseUrl');
  }
  return new LlmError(502, 'upstream_error', `${provider}: ${r.reason}`);
}

const retryable = (err: unknown) =>
  !refusedBy(err) &&
  (err instanceof OpenAI.APIConnectionError || (err instanceof OpenAI.APIError && (err.status === 429 || err.status === 408 || (err.status ?? 0) >= 500)));

export class LlmRouter {
  private readonly box?: SecretBox;
  private readonly fallbacks: ModelEntry[];
  private readonly log: Logger;
  /** Connections to URLs users give (their Ollama). */
  private readonly outbound: Outbound;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly s: LlmSettings,
    logger: Logger,
  ) {
    this.box = s.encryptionKey ? new SecretBox(s.encryptionKey) : undefined;
    this.fallbacks = s.fallbackModels.map((m) => findModel(m)).filter((m): m is ModelEntry => Boolean(m));
    this.log = logger.child({ component: 'llm' });
    this.outbound = new Outbound({ allow: s.providerAllow ?? [], totalTimeoutMs: s.timeoutMs });
  }

  // --- users' credentials ------------------------------------------------------

  async setCredential(userId: string, provider: ByokProvider, value: Credential): Promise<void> {
    if (value.baseUrl) {
      // Checked again at every connection (a name may resolve elsewhere later); this gives a clear 400 now.
      try {
        await this.outbound.check(value.baseUrl);
      } catch (err) {
        const refused = refusedBy(err);
        throw refused ? refusalError(refused, provider) : err;
      }
    }
    if (!this.box) throw new LlmError(503, 'server_error', 'storing provider keys is not configured (LLM_KEYS_ENCRYPTION_KEY)');
    const secret = new Uint8Array(this.box.seal(JSON.stringify(value), `${userId}:${provider}`));
    await this.prisma.llmCredential.upsert({ where: { userId_provider: { userId, provider } }, create: { userId, provider, secret }, update: { secret } });
  }

  async removeCredential(userId: string, provider: ByokProvider): Promise<boolean> {
    return (await this.prisma.llmCredential.deleteMany({ where: { userId, provider } })).count > 0;
  }

  async listCredentials(userId: string): Promise<{ provider: string; updatedAt: string }[]> {
    const rows = await this.prisma.llmCredential.findMany({ where: { userId }, select: { provider: true, updatedAt: true }, orderBy: { provider: 'asc' } });
    return rows.map((r) => ({ provider: r.provider, updatedAt: r.updatedAt.toISOString() }));
  }

  private async credentials(userId: string): Promise<Map<ByokProvider, Credential>> {
    const out = new Map<ByokProvider, Credential>();
    if (!this.box) return out;
    for (const row of await this.prisma.llmCredential.findMany({ where: { userId } })) {
      if (!(BYOK_PROVIDERS as readonly string[]).includes(row.provider)) continue;
      try {
        out.set(row.provider as ByokProvider, JSON.parse(this.box.open(row.secret, `${userId}:${row.provider}`)) as Credential);
      } catch {
        this.log.warn({ userId, provider: row.provider }, 'a stored provider credential does not open with the current key; skipped');
      }
    }
    return out;
  }

  // --- routing -------------------------------------------------------------------

  /** The attempts for a request, in order; 400 for a model Podex does not offer. */
  async route(userId: string, modelName: string): Promise<{ plan: Attempt[]; creds: Map<ByokProvider, Credential> }> {
    const model = findModel(modelName);
    if (!model) throw new LlmError(400, 'invalid_request_error', `model ${modelName} is not offered; GET /v1/models lists the models`, 'model');
    const creds = await this.credentials(userId);
    let plan = attempts(model, new Set(creds.keys()), this.fallbacks);
    if (!this.s.openrouterApiKey) plan = plan.filter((a) => a.provider !== 'openrouter');
    if (!plan.length) throw new LlmError(503, 'server_error', `no provider is configured for ${modelName}`);
    return { plan, creds };
  }

  private client(a: Attempt, creds: Map<ByokProvider, Credential>): OpenAI {
    const common = { maxRetries: this.s.maxRetries, timeout: this.s.timeoutMs };
    switch (a.provider) {
      case 'openrouter':
        return new OpenAI({ ...common, apiKey: this.s.openrouterApiKey, baseURL: this.s.openrouterBaseURL, defaultHeaders: { 'HTTP-Referer': this.s.referer, 'X-Title': this.s.title } });
      case 'openai':
        return new OpenAI({ ...common, apiKey: creds.get('openai')!.apiKey, baseURL: this.s.openaiBaseURL });
      case 'anthropic':
        return new OpenAI({ ...common, apiKey: creds.get('anthropic')!.apiKey, baseURL: this.s.anthropicBaseURL });
      case 'ollama': {
        // A URL the user gave: only through the outbound fetch (checked addresses, no redirects, bounded).
        const baseUrl = creds.get('ollama')!.baseUrl!;
        this.outbound.precheck(baseUrl);
        return new OpenAI({ ...common, apiKey: creds.get('ollama')!.apiKey ?? 'ollama', baseURL: `${baseUrl.replace(/\/+$/, '')}/v1`, fetch: this.outbound.fetch });
      }
    }
  }

  // --- credits and billing ---------------------------------------------------------

  async balance(userId: string): Promise<string> {
    const row = await this.prisma.llmCredit.findUnique({ where: { userId } });
    return row ? row.balanceUsd.toFixed(6) : '0.000000';
  }

  private async price(model: string): Promise<{ prompt: string; completion: string }> {
    let p = await this.prisma.llmModelPrice.findUnique({ where: { model } });
    if (!p) {
      await this.syncPrices();
      p = await this.prisma.llmModelPrice.findUnique({ where: { model } });
    }
    if (!p) throw new LlmError(503, 'server_error', `no price for ${model} in OpenRouter's catalog`);
    return { prompt: p.promptUsd.toFixed(12), completion: p.completionUsd.toFixed(12) };
  }

  /**
   * Records the call in llm_usage and, on Podex credits, charges the user. With an
   * idempotency key the same call is billed once however often it is retried.
   */
  async bill(userId: string, a: Attempt, usage: Usage | undefined, idempotencyKey?: string): Promise<{ costUsd: string; billedNow: boolean }> {
    const prompt = usage?.prompt_tokens ?? 0;
    const completion = usage?.completion_tokens ?? 0;
    const cost = a.billed ? costOf(await this.price(a.model), prompt, completion, this.s.markup) : { upstreamUsd: '0', chargedUsd: '0' };
    const billedNow = await this.prisma.$transaction(async (tx) => {
      const inserted = await tx.$executeRaw`
        INSERT INTO llm_usage (user_id, provider, model, prompt_tokens, completion_tokens, total_tokens, cost_usd, upstream_cost_usd, idempotency_key)
        VALUES (${userId}, ${a.provider}, ${a.model}, ${prompt}, ${completion}, ${usage?.total_tokens ?? prompt + completion},
                ${cost.chargedUsd}::numeric, ${cost.upstreamUsd}::numeric, ${idempotencyKey ?? null})
        ON CONFLICT (idempotency_key) DO NOTHING`;
      if (inserted && a.billed) {
        await tx.$executeRaw`
          INSERT INTO llm_credits (user_id, balance_usd, updated_at) VALUES (${userId}, -${cost.chargedUsd}::numeric, now())
          ON CONFLICT (user_id) DO UPDATE SET balance_usd = llm_credits.balance_usd - ${cost.chargedUsd}::numeric, updated_at = now()`;
      }
      return inserted > 0;
    });
    return { costUsd: cost.chargedUsd, billedNow };
  }

  private async mayUseCredits(userId: string): Promise<boolean> {
    const row = await this.prisma.llmCredit.findUnique({ where: { userId }, select: { balanceUsd: true } });
    return Boolean(row && row.balanceUsd.greaterThan(0));
  }

  /** Podex-paid attempts go only to users with credit; 402 when nothing else is left. */
  private async payable(userId: string, plan: Attempt[]): Promise<Attempt[]> {
    if (!plan.some((a) => a.billed) || (await this.mayUseCredits(userId))) return plan;
    const own = plan.filter((a) => !a.billed);
    if (!own.length) throw new LlmError(402, 'insufficient_quota', 'no Podex credit left: top up, or add your own provider key');
    return own;
  }

  // --- completions -----------------------------------------------------------------

  private request(body: ChatRequest, a: Attempt) {
    const { stream: _stream, ...rest } = body;
    return { ...rest, model: a.model };
  }

  /** A whole completion, falling back through the plan on 429/5xx. */
  async complete(userId: string, body: ChatRequest, opts: { signal?: AbortSignal; idempotencyKey?: string } = {}): Promise<{ completion: ChatCompletion; attempt: Attempt; costUsd: string }> {
    const { plan, creds } = await this.route(userId, body.model);
    const usable = await this.payable(userId, plan);
    let last: unknown;
    for (const a of usable) {
      try {
        const completion = await this.client(a, creds).chat.completions.create({ ...this.request(body, a), stream: false }, { signal: opts.signal });
        const { costUsd } = await this.bill(userId, a, completion.usage, opts.idempotencyKey);
        this.log.info({ userId, provider: a.provider, model: a.model, usage: completion.usage, costUsd }, 'completion');
        return { completion, attempt: a, costUsd };
      } catch (err) {
        last = err;
        if (!retryable(err)) throw this.upstreamError(err, a);
        this.log.warn({ userId, provider: a.provider, model: a.model, status: (err as { status?: number }).status }, 'provider failed; falling back');
      }
    }
    throw this.upstreamError(last, usable[usable.length - 1]);
  }

  /**
   * A streamed completion: chunks go to `send` as they come. Falls back only before the first
   * chunk (after that the caller already has part of an answer). Aborting `signal` stops the
   * upstream stream. Usage (asked for with include_usage) is billed at the end.
   */
  async stream(userId: string, body: ChatRequest, send: (chunk: ChatCompletionChunk) => void, signal: AbortSignal): Promise<{ attempt: Attempt; usage?: Usage; costUsd: string }> {
    const { plan, creds } = await this.route(userId, body.model);
    const usable = await this.payable(userId, plan);
    let last: unknown;
    for (const a of usable) {
      let sent = false;
      let usage: Usage | undefined;
      try {
        const stream = await this.client(a, creds).chat.completions.create({ ...this.request(body, a), stream: true, stream_options: { include_usage: true } }, { signal });
        for await (const chunk of stream) {
          if (chunk.usage) usage = chunk.usage;
          send(chunk);
          sent = true;
        }
        const { costUsd } = await this.bill(userId, a, usage);
        return { attempt: a, usage, costUsd };
      } catch (err) {
        last = err;
        if (signal.aborted) {
          // The caller went away: what was produced upstream is still billed if the provider said so.
          if (usage) await this.bill(userId, a, usage);
          throw new LlmError(499, 'client_closed', 'the client closed the connection');
        }
        if (sent || !retryable(err)) throw this.upstreamError(err, a);
      }
    }
    throw this.upstreamError(last, usable[usable.length - 1]);
  }

  private upstreamError(err: unknown, a: Attempt): unknown {
    if (err instanceof LlmError) return err;
    const refused = refusedBy(err);
    if (refused) {
      this.log.warn({ provider: a.provider, reason: refused.reason }, 'provider URL refused');
      return refusalError(refused, a.provider);
    }
    // Failures while reading the answer reach us unwrapped by the SDK; their messages are ours.
    if (err instanceof OutboundFailedError) return new LlmError(502, 'upstream_error', `${a.provider}: ${err.message}`);
    if (err instanceof OpenAI.APIError && err.status) {
      const status = err.status >= 500 || err.status === 429 ? 502 : err.status === 401 || err.status === 403 ? 502 : err.status;
      // Never the upstream's body (a user's URL could point at anything): its status and, at most, its short error code.
      const code = [err.code, err.type].find((c): c is string => typeof c === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(c));
      return new LlmError(status, status === 502 ? 'upstream_error' : 'invalid_request_error', `${a.provider} answered ${err.status}${code ? ` (${code})` : ''}`);
    }
    if (err instanceof OpenAI.APIConnectionError) return new LlmError(502, 'upstream_error', `${a.provider} could not be reached`);
    return err;
  }

  // --- OpenRouter's catalog ----------------------------------------------------------

  /** Reads OpenRouter's model catalog (per-token prices) into llm_model_prices. */
  async syncPrices(): Promise<number> {
    if (!this.s.openrouterApiKey) return 0;
    const client = this.client({ provider: 'openrouter', model: '', alias: '', billed: true }, new Map());
    let n = 0;
    for await (const m of client.models.list()) {
      const pricing = (m as unknown as { pricing?: { prompt?: string; completion?: string } }).pricing;
      if (!pricing?.prompt || !pricing.completion) continue;
      await this.prisma.llmModelPrice.upsert({
        where: { model: m.id },
        create: { model: m.id, promptUsd: pricing.prompt, completionUsd: pricing.completion },
        update: { promptUsd: pricing.prompt, completionUsd: pricing.completion, syncedAt: new Date() },
      });
      n++;
    }
    return n;
  }
}

export function llmSettings(c: Config): LlmSettings {
  return {
    openrouterApiKey: c.OPENROUTER_API_KEY,
    openrouterBaseURL: c.OPENROUTER_BASE_URL,
    referer: c.OPENROUTER_REFERER,
    title: c.OPENROUTER_TITLE,
    openaiBaseURL: c.OPENAI_BASE_URL,
    anthropicBaseURL: c.ANTHROPIC_BASE_URL,
    markup: c.LLM_MARKUP,
    fallbackModels: c.LLM_FALLBACK_MODELS,
    encryptionKey: c.LLM_KEYS_ENCRYPTION_KEY,
    maxRetries: c.LLM_UPSTREAM_RETRIES,
    timeoutMs: c.LLM_UPSTREAM_TIMEOUT_MS,
    providerAllow: c.LLM_PROVIDER_ALLOW,
  };
}
