/**
 * A local server speaking the OpenAI chat-completions and models API as OpenAI-compatible
 * providers do: Bearer auth (401 with OpenAI's error body), `model_not_found`, non-streamed
 * completions with `usage`, SSE streams ending in `data: [DONE]` with a usage chunk when
 * `stream_options.include_usage` is set (after the last choice chunk, with empty `choices`; never
 * when the stream is cut), `max_tokens`/`max_completion_tokens` honoured (completion tokens never
 * above it, finish_reason `length`), OpenRouter's `pricing` and `top_provider` fields in `/models`, and
 * its `GET /generation?id=` stats (tokens counted as they are written, also for a cut stream).
 * One instance per provider (OpenRouter, OpenAI, Anthropic's compatible endpoint, Ollama),
 * each on its own port; the real `openai` SDK talks to it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeModel {
  id: string;
  pricing?: { prompt: string; completion: string };
  maxCompletionTokens?: number;
}

export interface SeenRequest {
  path: string;
  model?: string;
  stream?: boolean;
  authorization?: string;
  referer?: string;
  title?: string;
  status: number;
  maxTokens?: number;
}

export class FakeOpenAi {
  readonly seen: SeenRequest[] = [];
  /** OpenRouter's generation stats (GET /generation?id=), counted as the answer is written, cut or not. */
  readonly generations = new Map<string, { tokens_prompt: number; tokens_completion: number; cancelled: boolean }>();
  /** Requests whose client went away before the answer was complete. */
  aborted = 0;
  usage = { prompt_tokens: 1234, completion_tokens: 567 };
  /** Pause between stream chunks, and before a whole answer. */
  chunkDelayMs = 0;
  delayMs = 0;
  chunks = 5;
  private faults: { status: number; times: number }[] = [];
  private server?: http.Server;
  url = '';

  constructor(
    readonly name: string,
    readonly models: FakeModel[],
    /** The one key it accepts (undefined: any). */
    readonly apiKey?: string,
  ) {}

  /** The next `times` completions answer `status` with OpenAI's error body. */
  fail(status: number, times = 1): void {
    this.faults.push({ status, times });
  }

  clear(): void {
    this.faults = [];
    this.seen.length = 0;
    this.aborted = 0;
  }

  async start(prefix = '/v1'): Promise<string> {
    this.server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d.toString()));
      req.on('end', () => void this.handle(req, res, raw));
    });
    this.server.listen(0, '127.0.0.1');
    await new Promise((r) => this.server!.once('listening', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${prefix}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, raw: string): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    const body = raw
      ? (JSON.parse(raw) as { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean }; messages?: unknown[]; max_tokens?: number; max_completion_tokens?: number })
      : {};
    const maxTokens = body.max_completion_tokens ?? body.max_tokens;
    const seen: SeenRequest = {
      path,
      model: body.model,
      stream: body.stream,
      authorization: req.headers.authorization,
      referer: req.headers['http-referer'] as string | undefined,
      title: req.headers['x-title'] as string | undefined,
      status: 200,
      maxTokens,
    };
    this.seen.push(seen);
    const error = (status: number, message: string, type: string, code: string | null) => {
      seen.status = status;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message, type, param: null, code } }));
    };
    if (this.apiKey && req.headers.authorization !== `Bearer ${this.apiKey}`) {
      return error(401, 'Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key');
    }
    if (req.method === 'GET' && path.endsWith('/models')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ object: 'list', data: this.models.map((m) => ({ id: m.id, object: 'model', created: 1_700_000_000, owned_by: this.name, ...(m.pricing ? { pricing: m.pricing } : {}), ...(m.maxCompletionTokens ? { top_provider: { max_completion_tokens: m.maxCompletionTokens } } : {}) })) }));
    }
    if (req.method === 'GET' && path.endsWith('/generation') && this.name === 'openrouter') {
      const gen = this.generations.get(new URL(req.url ?? '', 'http://x').searchParams.get('id') ?? '');
      if (!gen) return error(404, 'Generation not found', 'invalid_request_error', null);
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ data: { id: new URL(req.url ?? '', 'http://x').searchParams.get('id'), ...gen, native_tokens_prompt: gen.tokens_prompt, native_tokens_completion: gen.tokens_completion } }));
    }
    if (req.method !== 'POST' || !path.endsWith('/chat/completions')) return error(404, `Unknown path ${path}`, 'invalid_request_error', null);
    const fault = this.faults.find((f) => f.times > 0);
    if (fault) {
      fault.times--;
      return error(fault.status, fault.status === 429 ? 'Rate limit reached' : 'The server had an error while processing your request.', fault.status === 429 ? 'rate_limit_error' : 'server_error', null);
    }
    if (!this.models.some((m) => m.id === body.model)) return error(404, `The model \`${body.model}\` does not exist`, 'invalid_request_error', 'model_not_found');

    const id = `chatcmpl-${this.name}-${this.seen.length}`;
    const created = Math.floor(Date.now() / 1000);
    const words = Array.from({ length: this.chunks }, (_, i) => (i === 0 ? `${this.name}` : ` word${i}`));
    // A provider stops at the caller's limit and says so.
    const completionTokens = Math.min(this.usage.completion_tokens, maxTokens ?? Infinity);
    const finish = completionTokens < this.usage.completion_tokens ? 'length' : 'stop';
    const usage = { prompt_tokens: this.usage.prompt_tokens, completion_tokens: completionTokens, total_tokens: this.usage.prompt_tokens + completionTokens };
    let closed = false;
    const gen = { tokens_prompt: usage.prompt_tokens, tokens_completion: body.stream ? 0 : completionTokens, cancelled: false };
    this.generations.set(id, gen);
    res.on('close', () => {
      if (!res.writableFinished) {
        closed = true;
        gen.cancelled = true;
        this.aborted++;
      }
    });
    const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
    if (!body.stream) {
      await wait(this.delayMs);
      if (closed) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: words.join(''), refusal: null }, logprobs: null, finish_reason: finish }],
          usage,
        }),
      );
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunk = (delta: object, finish: string | null, extra: object = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...extra })}\n\n`;
    res.write(chunk({ role: 'assistant', content: '' }, null));
    for (const w of words) {
      await wait(this.chunkDelayMs);
      if (closed) return;
      res.write(chunk({ content: w }, null));
      gen.tokens_completion = Math.min(gen.tokens_completion + 1, completionTokens);
    }
    gen.tokens_completion = completionTokens;
    res.write(chunk({}, finish));
    if (body.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage })}\n\n`);
    res.end('data: [DONE]\n\n');
  }
}
