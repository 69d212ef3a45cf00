/**
 * The LLM provider router as data (seed Phase 10): which provider serves a request, under
 * which model name, and what it costs. No I/O.
 */

export type Provider = 'anthropic' | 'openai' | 'ollama' | 'openrouter';
/** Bring-your-own credentials, in the seed's routing order; OpenRouter (Podex credits) comes last. */
export const BYOK_PROVIDERS = ['anthropic', 'openai', 'ollama'] as const;
export type ByokProvider = (typeof BYOK_PROVIDERS)[number];

/** A model as users name it, and its id at each provider that serves it. */
export interface ModelEntry {
  alias: string;
  openrouter: string;
  anthropic?: string;
  openai?: string;
  ollama?: string;
}

/** The seed's Task 9.4 map, with each model's name at the providers that serve it directly. */
export const MODELS: readonly ModelEntry[] = [
  { alias: 'claude-3.5-sonnet', openrouter: 'anthropic/claude-3.5-sonnet', anthropic: 'claude-3-5-sonnet-latest' },
  { alias: 'claude-3-opus', openrouter: 'anthropic/claude-3-opus', anthropic: 'claude-3-opus-latest' },
  { alias: 'claude-3-haiku', openrouter: 'anthropic/claude-3-haiku', anthropic: 'claude-3-haiku-20240307' },
  { alias: 'gpt-4o', openrouter: 'openai/gpt-4o', openai: 'gpt-4o' },
  { alias: 'gpt-4o-mini', openrouter: 'openai/gpt-4o-mini', openai: 'gpt-4o-mini' },
  { alias: 'o1-preview', openrouter: 'openai/o1-preview', openai: 'o1-preview' },
  { alias: 'llama-3.1-70b', openrouter: 'meta-llama/llama-3.1-70b-instruct', ollama: 'llama3.1:70b' },
  { alias: 'mixtral-8x7b', openrouter: 'mistralai/mixtral-8x7b-instruct', ollama: 'mixtral:8x7b' },
  { alias: 'deepseek-coder', openrouter: 'deepseek/deepseek-coder-33b-instruct', ollama: 'deepseek-coder:33b' },
];

/** A model by its alias or its OpenRouter id; undefined if Podex does not offer it. */
export function findModel(name: string): ModelEntry | undefined {
  return MODELS.find((m) => m.alias === name || m.openrouter === name);
}

export interface Attempt {
  provider: Provider;
  /** The model's name at that provider. */
  model: string;
  alias: string;
  /** Podex pays the provider and charges the user's credits. */
  billed: boolean;
}

/**
 * Where a request goes, in order: the user's own providers that serve the model (Anthropic →
 * OpenAI → Ollama, as the seed routes), then OpenRouter on Podex credits; then the same for
 * each fallback model. The first attempt is the route; the rest are fallbacks after upstream
 * failures.
 */
export function attempts(model: ModelEntry, configured: ReadonlySet<ByokProvider>, fallbacks: readonly ModelEntry[] = []): Attempt[] {
  const out: Attempt[] = [];
  for (const m of [model, ...fallbacks.filter((f) => f.alias !== model.alias)]) {
    for (const p of BYOK_PROVIDERS) {
      const id = m[p];
      if (id && configured.has(p)) out.push({ provider: p, model: id, alias: m.alias, billed: false });
    }
    out.push({ provider: 'openrouter', model: m.openrouter, alias: m.alias, billed: true });
  }
  return out;
}

/** Podex's markup on OpenRouter's price (seed Task 9.5). */
export const DEFAULT_MARKUP = '1.2';

/**
 * Exact decimal arithmetic on strings (prices are per-token fractions such as "0.0000025"):
 * everything is scaled to 10^-18 USD as a BigInt, so no binary rounding creeps in.
 */
const SCALE = 18;
export function toUnits(decimal: string): bigint {
  const m = /^(-)?(\d*)(?:\.(\d*))?$/.exec(decimal.trim());
  if (!m) throw new Error(`not a decimal number: ${decimal}`);
  const frac = (m[3] ?? '').slice(0, SCALE).padEnd(SCALE, '0');
  const v = BigInt(m[2] || '0') * 10n ** BigInt(SCALE) + BigInt(frac || '0');
  return m[1] ? -v : v;
}

/** Units of 10^-18 USD as a decimal string with `digits` places, rounded half up (or up, for charges). */
export function fromUnits(units: bigint, digits = 6, round: 'half-up' | 'up' = 'half-up'): string {
  const neg = units < 0n;
  let v = neg ? -units : units;
  const drop = 10n ** BigInt(SCALE - digits);
  v = round === 'up' ? (v + drop - 1n) / drop : (v + drop / 2n) / drop;
  const s = v.toString().padStart(digits + 1, '0');
  return `${neg ? '-' : ''}${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

/** Credits are kept to 10^-12 USD (the catalog's per-token precision), so no call is too small to charge. */
export const USD_DIGITS = 12;

/** An amount as stored (12 places), shown with the zeros past the micro-dollar trimmed: "0.014648", "0.0000001". */
export function showUsd(decimal: string): string {
  const m = /^(-?\d+)\.(\d{6})(\d*?)0*$/.exec(fromUnits(toUnits(decimal), USD_DIGITS));
  return m ? `${m[1]}.${m[2]}${m[3]}` : decimal;
}

export interface Price {
  prompt: string;
  completion: string;
}

/**
 * The provider's price of a call and what Podex charges for it (with the markup), to 10^-12 USD.
 * The charge rounds up: any call with a price costs something.
 */
export function costOf(price: Price, promptTokens: number, completionTokens: number, markup = DEFAULT_MARKUP): { upstreamUsd: string; chargedUsd: string } {
  const upstream = toUnits(price.prompt) * BigInt(promptTokens) + toUnits(price.completion) * BigInt(completionTokens);
  const scaled = upstream * toUnits(markup);
  const one = 10n ** BigInt(SCALE);
  const charged = scaled / one + (scaled % one > 0n ? 1n : 0n);
  return { upstreamUsd: showUsd(fromUnits(upstream, USD_DIGITS)), chargedUsd: showUsd(fromUnits(charged, USD_DIGITS, 'up')) };
}

const utf8 = (s: string) => new TextEncoder().encode(s).length;

/**
 * At least as many prompt tokens as any provider counts for these messages: a token is never
 * shorter than one byte of text, plus each message's framing. Credit holds use it, so a call
 * never costs more than it held.
 */
export function promptTokensAtMost(request: { messages: unknown; tools?: unknown }): number {
  const messages = Array.isArray(request.messages) ? request.messages.length : 1;
  return utf8(JSON.stringify(request.messages ?? '')) + (request.tools ? utf8(JSON.stringify(request.tools)) : 0) + 4 * messages + 3;
}

/**
 * Tokens in text that reached the client when the provider's own count never came (the stream
 * was cut): the usual four bytes a token, and at least one per streamed piece, as providers
 * send about a token a chunk.
 */
export function tokensOfText(text: string, pieces = 0): number {
  return Math.max(Math.ceil(utf8(text) / 4), pieces);
}

/** What a Podex-paid call holds: its prompt and its most output, at the price with the markup. */
export function holdOf(price: Price, promptTokens: number, maxOutputTokens: number, markup = DEFAULT_MARKUP): string {
  return costOf(price, promptTokens, maxOutputTokens, markup).chargedUsd;
}
