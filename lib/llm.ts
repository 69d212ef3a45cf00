/**
 * The LLM client layer: every provider through the `openai` SDK (OpenRouter, OpenAI,
 * Anthropic's OpenAI-compatible endpoint, a user's Ollama), routing and fallback, credit
 * checks and billing. Users' keys are opened only here, only for the call.
 */
import OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { attempts, BYOK_PROVIDERS, costOf, findModel, holdOf, promptTokensAtMost, tokensOfText, toUnits, type Attempt, type ByokProvider, type ModelEntry } from '../domain/llm';
import type { Config } from '../domain/config';
import { CreditLedger, type UsageRecord } from './llm-ledger';
import type { Logger } from './logger';
import type { Prisma, PrismaClient } from './prisma';
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
  /** Output tokens a Podex-paid call holds (and is capped at) when neither the request nor the catalog says. */
  defaultMaxOutputTokens: number;
  /** A hold left by a dead process stops counting after this. */
  holdTtlSeconds: number;
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

/** Credit held for a call: which Podex-paid attempts may run, and at most how many output tokens each. */
interface Reservation {
  holdId?: string;
  caps: Map<Attempt, number>;
  amountUsd: string;
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
  readonly ledger: CreditLedger;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly s: LlmSettings,
    logger: Logger,
  ) {
    this.box = s.encryptionKey ? new SecretBox(s.encryptionKey) : undefined;
    this.fallbacks = s.fallbackModels.map((m) => findModel(m)).filter((m): m is ModelEntry => Boolean(m));
    this.log = logger.child({ component: 'llm' });
    this.outbound = new Outbound({ allow: s.providerAllow ?? [], totalTimeoutMs: s.timeoutMs });
    this.ledger = new CreditLedger(prisma, s.holdTtlSeconds);
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

  /** The user's credentials that open, and the providers whose stored credential no longer does. */
  private async credentials(userId: string): Promise<{ creds: Map<ByokProvider, Credential>; unreadable: Set<ByokProvider> }> {
    const creds = new Map<ByokProvider, Credential>();
    const unreadable = new Set<ByokProvider>();
    for (const row of await this.prisma.llmCredential.findMany({ where: { userId } })) {
      if (!(BYOK_PROVIDERS as readonly string[]).includes(row.provider)) continue;
      try {
        if (!this.box) throw new Error('no key');
        creds.set(row.provider as ByokProvider, JSON.parse(this.box.open(row.secret, `${userId}:${row.provider}`)) as Credential);
      } catch {
        unreadable.add(row.provider as ByokProvider);
        this.log.warn({ userId, provider: row.provider }, 'a stored provider credential does not open with the current key');
      }
    }
    return { creds, unreadable };
  }

  // --- routing -------------------------------------------------------------------

  /** The attempts for a request, in order; 400 for a model Podex does not offer. */
  async route(userId: string, modelName: string): Promise<{ plan: Attempt[]; creds: Map<ByokProvider, Credential> }> {
    const model = findModel(modelName);
    if (!model) throw new LlmError(400, 'invalid_request_error', `model ${modelName} is not offered; GET /v1/models lists the models`, 'model');
    const { creds, unreadable } = await this.credentials(userId);
    // The user meant their own key to serve this: never quietly pay with their credits instead.
    const broken = attempts(model, new Set([...creds.keys(), ...unreadable]), this.fallbacks).find((a) => unreadable.has(a.provider as ByokProvider));
    if (broken) {
      throw new LlmError(409, 'credential_unreadable', `your stored ${broken.provider} credential can no longer be read: enter it again (PUT /v1/providers/${broken.provider}) or remove it (DELETE) to use Podex credits`, 'provider');
    }
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
    return this.ledger.balance(userId);
  }

  private async price(model: string): Promise<{ prompt: string; completion: string; maxOutput: number | null }> {
    let p = await this.prisma.llmModelPrice.findUnique({ where: { model } });
    if (!p) {
      await this.syncPrices();
      p = await this.prisma.llmModelPrice.findUnique({ where: { model } });
    }
    if (!p) throw new LlmError(503, 'server_error', `no price for ${model} in OpenRouter's catalog`);
    return { prompt: p.promptUsd.toFixed(12), completion: p.completionUsd.toFixed(12), maxOutput: p.maxCompletionTokens };
  }

  /** What a call cost and what Podex charges for it: the provider's counts, or our estimate when none came. */
  private async usageRecord(a: Attempt, promptTokens: number, completionTokens: number, estimated = false): Promise<UsageRecord> {
    const cost = a.billed ? costOf(await this.price(a.model), promptTokens, completionTokens, this.s.markup) : { upstreamUsd: '0', chargedUsd: '0' };
    return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens, upstreamUsd: cost.upstreamUsd, chargedUsd: cost.chargedUsd, estimated };
  }

  /**
   * Holds Podex credit, before the first Podex-paid attempt, for the most the call can cost on
   * any of them (its prompt and its max_tokens — or the model's maximum output, or the configured
   * default, which is then sent as max_tokens — at the price with the markup). `caps` lists the
   * billed attempts that may run; those that cannot be priced are left out, and none may run when
   * the hold does not fit.
   */
  private async reserve(userId: string, body: ChatRequest, plan: Attempt[], idempotencyKey?: string): Promise<Reservation> {
    const caps = new Map<Attempt, number>();
    const prompt = promptTokensAtMost(body);
    const asked = body.max_completion_tokens ?? body.max_tokens ?? undefined;
    let most = '0';
    let unpriced: unknown;
    for (const a of plan.filter((x) => x.billed)) {
      try {
        const p = await this.price(a.model);
        const out = asked ?? p.maxOutput ?? this.s.defaultMaxOutputTokens;
        caps.set(a, out);
        const h = holdOf(p, prompt, out, this.s.markup);
        if (toUnits(h) > toUnits(most)) most = h;
      } catch (err) {
        unpriced ??= err;
      }
    }
    if (!caps.size) throw unpriced;
    const holdId = await this.ledger.hold(userId, most, idempotencyKey);
    return { holdId, caps: holdId ? caps : new Map(), amountUsd: most };
  }

  /** 402 when Podex credit was the only way left and the call's hold did not fit. */
  private refused(r: Reservation): LlmError {
    return new LlmError(402, 'insufficient_quota', `this call can cost up to $${r.amountUsd} (its prompt and max_tokens at the model's price) and your Podex credit, less calls in flight, does not cover it: lower max_tokens, top up, or add your own provider key`);
  }

  // --- completions -----------------------------------------------------------------

  private request(body: ChatRequest, a: Attempt, caps?: Map<Attempt, number>) {
    const { stream: _stream, ...rest } = body;
    const cap = caps?.get(a);
    // The hold covers `cap` output tokens: a Podex-paid call without its own limit gets that one.
    const limit = a.billed && cap && rest.max_tokens == null && rest.max_completion_tokens == null ? { max_tokens: cap } : {};
    return { ...rest, ...limit, model: a.model };
  }

  /** Forgets the answer stored under a key once its job has recorded it. */
  async forgetAnswer(idempotencyKey: string): Promise<void> {
    await this.prisma.llmAnswer.deleteMany({ where: { idempotencyKey } });
  }

  /**
   * A whole completion, falling back through the plan on 429/5xx. With an idempotency key (a
   * job's id) the answer is stored before billing, and a retry bills and returns the stored
   * answer instead of calling the provider again.
   */
  async complete(userId: string, body: ChatRequest, opts: { signal?: AbortSignal; idempotencyKey?: string } = {}): Promise<{ completion: ChatCompletion; attempt: Attempt; costUsd: string }> {
    const key = opts.idempotencyKey;
    const stored = key ? await this.prisma.llmAnswer.findUnique({ where: { idempotencyKey: key } }) : null;
    if (stored && stored.userId === userId) {
      const attempt = stored.attempt as unknown as Attempt;
      const completion = stored.completion as unknown as ChatCompletion;
      const costUsd = await this.settle(userId, attempt, body, completion, undefined, key);
      this.log.info({ userId, provider: attempt.provider, model: attempt.model, costUsd }, 'completion answered from its stored answer');
      return { completion, attempt, costUsd };
    }
    const { plan, creds } = await this.route(userId, body.model);
    let r: Reservation | undefined;
    let settled = false;
    let last: unknown;
    try {
      for (const a of plan) {
        if (a.billed && !(r ??= await this.reserve(userId, body, plan, key)).caps.has(a)) continue;
        let completion: ChatCompletion;
        try {
          completion = await this.client(a, creds).chat.completions.create({ ...this.request(body, a, r?.caps), stream: false }, { signal: opts.signal });
        } catch (err) {
          last = err;
          if (!retryable(err)) throw this.upstreamError(err, a);
          this.log.warn({ userId, provider: a.provider, model: a.model, status: (err as { status?: number }).status }, 'provider failed; falling back');
          continue;
        }
        if (key) {
          await this.prisma.llmAnswer.createMany({
            data: [{ idempotencyKey: key, userId, attempt: a as unknown as Prisma.InputJsonValue, completion: completion as unknown as Prisma.InputJsonValue }],
            skipDuplicates: true,
          });
        }
        settled = true;
        const costUsd = await this.settle(userId, a, body, completion, r?.holdId, key);
        this.log.info({ userId, provider: a.provider, model: a.model, usage: completion.usage, costUsd }, 'completion');
        return { completion, attempt: a, costUsd };
      }
      throw last === undefined && r ? this.refused(r) : this.upstreamError(last, plan[plan.length - 1]);
    } finally {
      if (r?.holdId && !settled) await this.ledger.release(userId, r.holdId);
    }
  }

  /** Bills a whole completion by the provider's usage, or by counting its text when the provider gave none. */
  private async settle(userId: string, a: Attempt, body: ChatRequest, c: ChatCompletion, holdId: string | undefined, key?: string): Promise<string> {
    const text = c.choices.map((ch) => (ch.message.content ?? '') + JSON.stringify(ch.message.tool_calls ?? '')).join('');
    const u = c.usage
      ? await this.usageRecord(a, c.usage.prompt_tokens, c.usage.completion_tokens)
      : await this.usageRecord(a, tokensOfText(JSON.stringify(body.messages)), tokensOfText(text), true);
    await this.ledger.settle(userId, a, u, holdId, key);
    return u.chargedUsd;
  }

  /**
   * A streamed completion: chunks go to `send` as they come. Falls back only before the first
   * chunk (after that the caller already has part of an answer). Aborting `signal` stops the
   * upstream stream. Billed always: by the provider's usage (asked for with include_usage), or,
   * when the stream was cut before it, by counting what was sent.
   */
  async stream(userId: string, body: ChatRequest, send: (chunk: ChatCompletionChunk) => void, signal: AbortSignal): Promise<{ attempt: Attempt; usage?: Usage; costUsd: string }> {
    const { plan, creds } = await this.route(userId, body.model);
    let r: Reservation | undefined;
    let settled = false;
    let last: unknown;
    try {
      for (const a of plan) {
        if (a.billed && !(r ??= await this.reserve(userId, body, plan)).caps.has(a)) continue;
        let sent = false;
        let usage: Usage | undefined;
        let text = '';
        let pieces = 0;
        let generation: string | undefined;
        const bill = async () => {
          settled = true;
          // Cut before its usage chunk: the provider's own count where it keeps one, never less than what reached the client.
          const counted = usage ? undefined : await this.generationUsage(a, creds, generation);
          const u = usage
            ? await this.usageRecord(a, usage.prompt_tokens, usage.completion_tokens)
            : await this.usageRecord(a, counted?.prompt_tokens ?? tokensOfText(JSON.stringify(body.messages)), Math.max(counted?.completion_tokens ?? 0, tokensOfText(text, pieces)), true);
          await this.ledger.settle(userId, a, u, r?.holdId);
          if (u.estimated) this.log.info({ userId, provider: a.provider, model: a.model, promptTokens: u.promptTokens, completionTokens: u.completionTokens, costUsd: u.chargedUsd }, 'stream cut before its usage; billed what was sent');
          return u.chargedUsd;
        };
        try {
          const stream = await this.client(a, creds).chat.completions.create({ ...this.request(body, a, r?.caps), stream: true, stream_options: { include_usage: true } }, { signal });
          for await (const chunk of stream) {
            generation ??= chunk.id;
            if (chunk.usage) usage = chunk.usage;
            send(chunk);
            sent = true;
            for (const c of chunk.choices) {
              const piece = (c.delta?.content ?? '') + (c.delta?.refusal ?? '') + (c.delta?.tool_calls ?? []).map((t) => (t.function?.name ?? '') + (t.function?.arguments ?? '')).join('');
              if (piece) {
                text += piece;
                pieces++;
              }
            }
          }
          const costUsd = await bill();
          return { attempt: a, usage, costUsd };
        } catch (err) {
          last = err;
          // Once the provider has answered, what reached the caller is paid for, however the stream ended.
          if (sent && !settled) await bill();
          if (signal.aborted) throw new LlmError(499, 'client_closed', 'the client closed the connection');
          if (sent || !retryable(err)) throw this.upstreamError(err, a);
        }
      }
      throw last === undefined && r ? this.refused(r) : this.upstreamError(last, plan[plan.length - 1]);
    } finally {
      if (r?.holdId && !settled) await this.ledger.release(userId, r.holdId);
    }
  }

  /** OpenRouter's count of a generation (GET /generation?id=); undefined where there is none (yet). */
  private async generationUsage(a: Attempt, creds: Map<ByokProvider, Credential>, id?: string): Promise<Usage | undefined> {
    if (a.provider !== 'openrouter' || !id) return undefined;
    try {
      const { data } = await this.client(a, creds).get<{ data?: { tokens_prompt?: unknown; tokens_completion?: unknown } }>('/generation', { query: { id }, timeout: 3_000, maxRetries: 0 });
      const [p, c] = [data?.tokens_prompt, data?.tokens_completion];
      return typeof p === 'number' && typeof c === 'number' && p >= 0 && c >= 0 ? { prompt_tokens: Math.ceil(p), completion_tokens: Math.ceil(c) } : undefined;
    } catch {
      return undefined;
    }
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
      const { pricing, top_provider: top } = m as unknown as { pricing?: { prompt?: string; completion?: string }; top_provider?: { max_completion_tokens?: number | null } };
      if (!pricing?.prompt || !pricing.completion) continue;
      const maxCompletionTokens = Number.isInteger(top?.max_completion_tokens) && top!.max_completion_tokens! > 0 ? top!.max_completion_tokens! : null;
      await this.prisma.llmModelPrice.upsert({
        where: { model: m.id },
        create: { model: m.id, promptUsd: pricing.prompt, completionUsd: pricing.completion, maxCompletionTokens },
        update: { promptUsd: pricing.prompt, completionUsd: pricing.completion, maxCompletionTokens, syncedAt: new Date() },
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
    defaultMaxOutputTokens: c.LLM_DEFAULT_MAX_OUTPUT_TOKENS,
    holdTtlSeconds: c.LLM_HOLD_TTL_SECONDS,
  };
}
