import { randomBytes, randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { PassThrough } from 'node:stream';
import OpenAI from 'openai';
import pino from 'pino';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createLlmActivities } from '../activities/llm';
import { mintToken } from '../api/auth';
import { MODELS } from '../domain/llm';
import { config } from '../lib/config';
import { LlmRouter, type LlmSettings } from '../lib/llm';
import { createPrisma } from '../lib/prisma';
import { FakeOpenAi } from './fake-openai';
import { eventually, startHarness, type Harness } from './harness';
import { spawnWorker, uniq } from './helpers';

const PODEX_KEY = `sk-or-podex-${randomBytes(8).toString('hex')}`;
const USER_OPENAI_KEY = `sk-user-openai-${randomBytes(12).toString('hex')}`;
const USER_ANTHROPIC_KEY = `sk-ant-user-${randomBytes(12).toString('hex')}`;
const ENCRYPTION_KEY = randomBytes(32).toString('hex');

const price = (id: string) =>
  id === 'anthropic/claude-3.5-sonnet' ? { prompt: '0.000003', completion: '0.000015' } : id === 'openai/gpt-4o-mini' ? { prompt: '0.00000015', completion: '0.0000006' } : { prompt: '0.0000025', completion: '0.00001' };

describe('LLM provider router and its OpenAI-compatible endpoint', () => {
  const openrouter = new FakeOpenAi('openrouter', MODELS.map((m) => ({ id: m.openrouter, pricing: price(m.openrouter) })), PODEX_KEY);
  const openai = new FakeOpenAi('openai', [{ id: 'gpt-4o' }, { id: 'gpt-4o-mini' }, { id: 'o1-preview' }], USER_OPENAI_KEY);
  const anthropic = new FakeOpenAi('anthropic', [{ id: 'claude-3-5-sonnet-latest' }, { id: 'claude-3-opus-latest' }, { id: 'claude-3-haiku-20240307' }], USER_ANTHROPIC_KEY);
  const ollama = new FakeOpenAi('ollama', [{ id: 'llama3.1:70b' }, { id: 'mixtral:8x7b' }]);
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (d: Buffer) => (logText += d.toString()));
  let h: Harness;
  let settings: LlmSettings;
  const prisma = createPrisma(config().DATABASE_URL, 2);
  const users = {
    byok: uniq('llm-byok'),
    credits: uniq('llm-credits'),
    broke: uniq('llm-broke'),
    fallback: uniq('llm-fallback'),
    cut: uniq('llm-cut'),
    spender: uniq('llm-spender'),
    topup: uniq('llm-topup'),
    stale: uniq('llm-stale'),
    tiny: uniq('llm-tiny'),
    jobber: uniq('llm-jobber'),
    crashed: uniq('llm-crashed'),
  };
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    await Promise.all([openrouter.start('/api/v1'), openai.start(), anthropic.start(), ollama.start()]);
    settings = {
      openrouterApiKey: PODEX_KEY,
      openrouterBaseURL: openrouter.url,
      referer: 'https://podex.dev',
      title: 'Podex',
      openaiBaseURL: openai.url,
      anthropicBaseURL: `${anthropic.url}/`,
      markup: '1.2',
      fallbackModels: ['gpt-4o-mini'],
      encryptionKey: ENCRYPTION_KEY,
      maxRetries: 1,
      timeoutMs: 10_000,
      // The local Ollama is on loopback: allowed by the operator setting, as a private Ollama would be.
      providerAllow: ['127.0.0.1'],
      defaultMaxOutputTokens: 4096,
      holdTtlSeconds: 600,
    };
    const logger = pino({ level: 'debug' }, logs);
    h = await startHarness('llm', { llm: settings }, { overrides: { logger, llm: new LlmRouter(prisma, settings, logger) } });
    const secret = config().JWT_SECRET_KEY;
    for (const [k, id] of Object.entries(users)) tokens[k] = await mintToken(secret, id, 'user');
    await prisma.llmModelPrice.deleteMany({});
  });

  afterAll(async () => {
    await prisma.llmCredential.deleteMany({ where: { userId: { in: Object.values(users) } } });
    await prisma.llmCredit.deleteMany({ where: { userId: { in: Object.values(users) } } });
    await prisma.llmHold.deleteMany({ where: { userId: { in: Object.values(users) } } });
    await prisma.llmTopUp.deleteMany({ where: { userId: { in: Object.values(users) } } });
    await h.close();
    await prisma.$disconnect();
    await Promise.all([openrouter.stop(), openai.stop(), anthropic.stop(), ollama.stop()]);
  });

  const chat = (user: keyof typeof users, body: object) => h.call('POST', '/v1/chat/completions', { token: tokens[user], body });
  const hello = [{ role: 'user', content: 'hello' }];
  const topUp = (user: keyof typeof users, addUsd: string, key = randomUUID()) =>
    h.call('POST', `/credits/${users[user]}`, { body: { addUsd }, headers: { 'idempotency-key': key } });
  const balance = async (user: keyof typeof users) => (await prisma.llmCredit.findUnique({ where: { userId: users[user] } }))!.balanceUsd;

  it('routes as the seed orders it — own Anthropic key, own OpenAI key, own Ollama, then OpenRouter — under each provider’s model name', async () => {
    expect((await h.call('PUT', '/v1/providers/anthropic', { token: tokens.byok, body: { apiKey: USER_ANTHROPIC_KEY } })).status).toBe(204);
    expect((await h.call('PUT', '/v1/providers/openai', { token: tokens.byok, body: { apiKey: USER_OPENAI_KEY } })).status).toBe(204);
    expect((await h.call('PUT', '/v1/providers/ollama', { token: tokens.byok, body: { baseUrl: ollama.url.replace(/\/v1$/, '') } })).status).toBe(204);

    const claude = await chat('byok', { model: 'claude-3.5-sonnet', messages: hello });
    expect(claude.status).toBe(200);
    expect(claude.body.choices[0].message.content).toMatch(/^anthropic/);
    expect(anthropic.seen.at(-1)).toMatchObject({ model: 'claude-3-5-sonnet-latest', authorization: `Bearer ${USER_ANTHROPIC_KEY}` });
    expect((await chat('byok', { model: 'gpt-4o', messages: hello })).body.choices[0].message.content).toMatch(/^openai/);
    expect(openai.seen.at(-1)).toMatchObject({ model: 'gpt-4o', authorization: `Bearer ${USER_OPENAI_KEY}` });
    expect((await chat('byok', { model: 'llama-3.1-70b', messages: hello })).body.choices[0].message.content).toMatch(/^ollama/);
    expect(ollama.seen.at(-1)).toMatchObject({ model: 'llama3.1:70b', path: '/v1/chat/completions' });
    // Own keys: tokens recorded, nothing charged.
    const own = await prisma.llmUsage.findMany({ where: { userId: users.byok }, orderBy: { id: 'asc' } });
    expect(own.map((u) => [u.provider, u.model, u.promptTokens, u.completionTokens, u.costUsd.toFixed(6)])).toEqual([
      ['anthropic', 'claude-3-5-sonnet-latest', 1234, 567, '0.000000'],
      ['openai', 'gpt-4o', 1234, 567, '0.000000'],
      ['ollama', 'llama3.1:70b', 1234, 567, '0.000000'],
    ]);

    // Without keys: OpenRouter, by its id for the alias, with Podex's key and attribution headers.
    await topUp('credits', '10');
    const or = await chat('credits', { model: 'claude-3.5-sonnet', messages: hello });
    expect(or.body.choices[0].message.content).toMatch(/^openrouter/);
    const completions = () => openrouter.seen.filter((s) => s.path.endsWith('/chat/completions'));
    expect(completions().at(-1)).toMatchObject({ model: 'anthropic/claude-3.5-sonnet', authorization: `Bearer ${PODEX_KEY}`, referer: 'https://podex.dev', title: 'Podex' });
    // Its first bill read OpenRouter's catalog for the price.
    expect(openrouter.seen.filter((s) => s.path === '/api/v1/models')).toHaveLength(1);

    const unknown = await chat('credits', { model: 'gpt-17', messages: hello });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ type: 'invalid_request_error', param: 'model', message: expect.stringMatching(/gpt-17 is not offered/) });
    expect((await chat('credits', { model: 'gpt-4o', messages: [], temperature: 9 })).body.error.param).toBe('messages');
    const models = await h.call('GET', '/v1/models', { token: tokens.credits });
    expect(models.body.data.map((m: { id: string }) => m.id)).toEqual(MODELS.map((m) => m.alias));
  });

  it('bills OpenRouter’s catalog price × 1.2 to the cent from the user’s credits', async () => {
    const before = await h.call('GET', '/v1/credits', { token: tokens.credits });
    const call = await chat('credits', { model: 'claude-3.5-sonnet', messages: hello });
    expect(call.status).toBe(200);
    // 1234 × $0.000003 + 567 × $0.000015 = $0.012207; × 1.2 = $0.0146484 → $0.014648.
    const row = await prisma.llmUsage.findFirst({ where: { userId: users.credits }, orderBy: { id: 'desc' } });
    expect(row).toMatchObject({ provider: 'openrouter', model: 'anthropic/claude-3.5-sonnet', promptTokens: 1234, completionTokens: 567, totalTokens: 1801 });
    expect(row!.upstreamCostUsd.toFixed(6)).toBe('0.012207');
    expect(row!.costUsd.toFixed(7)).toBe('0.0146484');
    const after = await h.call('GET', '/v1/credits', { token: tokens.credits });
    expect(Number(before.body.balanceUsd) - Number(after.body.balanceUsd)).toBeCloseTo(0.0146484, 7);
    // The catalog came from OpenRouter's /models (pricing fields), on first need.
    expect((await prisma.llmModelPrice.findUnique({ where: { model: 'openai/gpt-4o-mini' } }))!.promptUsd.toFixed(8)).toBe('0.00000015');
  });

  it('answers 402 to a user without credit before any upstream call', async () => {
    const calls = openrouter.seen.length;
    const res = await chat('broke', { model: 'gpt-4o', messages: hello });
    expect(res.status).toBe(402);
    expect(res.body.error.type).toBe('insufficient_quota');
    expect(openrouter.seen.length).toBe(calls);
  });

  it('falls back to the next provider on upstream 5xx, after the SDK’s own retry', async () => {
    await h.call('PUT', '/v1/providers/openai', { token: tokens.fallback, body: { apiKey: USER_OPENAI_KEY } });
    await topUp('fallback', '1');
    openai.clear();
    openai.fail(500, 10);
    const res = await chat('fallback', { model: 'gpt-4o', messages: hello });
    expect(res.status).toBe(200);
    expect(res.body.choices[0].message.content).toMatch(/^openrouter/);
    expect(openai.seen.filter((s) => s.status === 500).length).toBe(2);
    expect(openrouter.seen.filter((s) => s.path.endsWith('/chat/completions')).at(-1)).toMatchObject({ model: 'openai/gpt-4o' });
    expect((await prisma.llmUsage.findFirst({ where: { userId: users.fallback }, orderBy: { id: 'desc' } }))!.provider).toBe('openrouter');
    openai.clear();
  });

  it('streams server-sent events that the openai SDK reads unchanged, bills the streamed usage, and stops upstream when the client goes away', async () => {
    const client = new OpenAI({ apiKey: tokens.credits, baseURL: `${h.url}/v1`, maxRetries: 0 });
    const whole = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(whole.choices[0].message.content).toBe('openrouter word1 word2 word3 word4');
    const rowsBefore = await prisma.llmUsage.count({ where: { userId: users.credits } });
    let text = '';
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true });
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('openrouter word1 word2 word3 word4');
    const streamed = await prisma.llmUsage.findFirst({ where: { userId: users.credits }, orderBy: { id: 'desc' } });
    expect(await prisma.llmUsage.count({ where: { userId: users.credits } })).toBe(rowsBefore + 1);
    expect(streamed).toMatchObject({ model: 'openai/gpt-4o-mini', promptTokens: 1234, completionTokens: 567 });

    openrouter.chunks = 50;
    openrouter.chunkDelayMs = 100;
    try {
      const abort = new AbortController();
      const res = await fetch(`${h.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.credits}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: hello, stream: true }),
        signal: abort.signal,
      });
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const reader = res.body!.getReader();
      await reader.read();
      abort.abort();
      await eventually(async () => openrouter.aborted >= 1, 5_000, 50);
    } finally {
      openrouter.chunks = 5;
      openrouter.chunkDelayMs = 0;
    }
  });

  it('bills a stream the client cut off before the usage chunk, for what was streamed', async () => {
    await topUp('cut', '1');
    openrouter.chunks = 50;
    openrouter.chunkDelayMs = 100;
    const aborted = openrouter.aborted;
    let pieces = 0;
    try {
      const abort = new AbortController();
      const res = await fetch(`${h.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.cut}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: hello, stream: true }),
        signal: abort.signal,
      });
      const reader = res.body!.getReader();
      let raw = '';
      while (pieces < 3) {
        raw += new TextDecoder().decode((await reader.read()).value);
        pieces = (raw.match(/"content":"[^"]+"/g) ?? []).length;
      }
      abort.abort();
      await eventually(async () => openrouter.aborted > aborted, 5_000, 50);
    } finally {
      openrouter.chunks = 5;
      openrouter.chunkDelayMs = 0;
    }
    // The stream never carried its usage: OpenRouter's count of the generation is asked for, and
    // never less than what reached the client is charged.
    const row = await eventually(async () => prisma.llmUsage.findFirst({ where: { userId: users.cut } }), 5_000, 50);
    expect(row).toMatchObject({ provider: 'openrouter', model: 'openai/gpt-4o-mini', promptTokens: 1234 });
    expect(openrouter.seen.some((s) => s.path === '/api/v1/generation')).toBe(true);
    expect(row!.completionTokens).toBeGreaterThanOrEqual(pieces);
    expect(row!.costUsd.greaterThan(0)).toBe(true);
    expect((await balance('cut')).toFixed(12)).toBe((1 - Number(row!.costUsd)).toFixed(12));
    expect(await prisma.llmHold.count({ where: { userId: users.cut } })).toBe(0);
  });

  it('cannot overspend: 10 concurrent calls with a large max_tokens on a small balance hold credit first, and the rest get 402', async () => {
    await topUp('spender', '0.10');
    openrouter.usage = { prompt_tokens: 8, completion_tokens: 100_000 };
    const upstream = openrouter.seen.length;
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () => chat('spender', { model: 'gpt-4o-mini', messages: hello, max_tokens: 100_000 })));
      const statuses = results.map((r) => r.status);
      expect(statuses.every((s) => s === 200 || s === 402)).toBe(true);
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
      for (const r of results.filter((x) => x.status === 402)) expect(r.body.error.type).toBe('insufficient_quota');
      // Refused calls never reached the provider.
      expect(openrouter.seen.length - upstream).toBe(statuses.filter((s) => s === 200).length);
    } finally {
      openrouter.usage = { prompt_tokens: 1234, completion_tokens: 567 };
    }
    const charged = await prisma.llmUsage.aggregate({ where: { userId: users.spender }, _sum: { costUsd: true } });
    expect(charged._sum.costUsd!.lessThanOrEqualTo('0.10')).toBe(true);
    expect((await balance('spender')).greaterThanOrEqualTo(0)).toBe(true);
    expect(await prisma.llmHold.count({ where: { userId: users.spender } })).toBe(0);
    // A call without max_tokens holds the model's default output and is capped at it upstream.
    const small = await chat('spender', { model: 'gpt-4o-mini', messages: hello });
    expect(small.status).toBe(200);
    expect(openrouter.seen.at(-1)!.maxTokens).toBe(4096);
  });

  it('applies a credit top-up once per Idempotency-Key', async () => {
    const key = randomUUID();
    const first = await topUp('topup', '2.5', key);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ userId: users.topup, balanceUsd: '2.500000' });
    // A retry, and five concurrent ones, answer the same and add nothing.
    const again = await Promise.all(Array.from({ length: 5 }, () => topUp('topup', '2.5', key)));
    for (const r of again) {
      expect(r.status).toBe(200);
      expect(r.body.balanceUsd).toBe('2.500000');
      expect(r.headers.get('idempotent-replayed')).toBe('true');
    }
    expect((await balance('topup')).toFixed(6)).toBe('2.500000');
    const other = await topUp('topup', '3', key);
    expect(other.status).toBe(422);
    expect(other.body.error.param).toBe('Idempotency-Key');
    expect((await topUp('credits', '2.5', key)).status).toBe(422);
    const keyless = await h.call('POST', `/credits/${users.topup}`, { body: { addUsd: '1' } });
    expect(keyless.status).toBe(400);
    expect(keyless.body.error.message).toMatch(/^Idempotency-Key: /);
    expect((await h.call('POST', `/credits/${users.topup}`, { token: tokens.topup, body: { addUsd: '1' }, headers: { 'idempotency-key': randomUUID() } })).status).toBe(403);
    expect((await balance('topup')).toFixed(6)).toBe('2.500000');
    expect(await prisma.auditLog.count({ where: { action: 'credits.add', targetId: users.topup } })).toBe(1);
  });

  it('refuses a stored key that no longer opens instead of charging credits for the call', async () => {
    await topUp('stale', '1');
    expect((await h.call('PUT', '/v1/providers/openai', { token: tokens.stale, body: { apiKey: USER_OPENAI_KEY } })).status).toBe(204);
    // As after a rotated LLM_KEYS_ENCRYPTION_KEY: the ciphertext no longer opens.
    const row = await prisma.llmCredential.findUniqueOrThrow({ where: { userId_provider: { userId: users.stale, provider: 'openai' } } });
    const secret = Buffer.from(row.secret);
    secret[secret.length - 1] ^= 0xff;
    await prisma.llmCredential.update({ where: { userId_provider: { userId: users.stale, provider: 'openai' } }, data: { secret: new Uint8Array(secret) } });
    const upstream = openrouter.seen.length + openai.seen.length;
    const res = await chat('stale', { model: 'gpt-4o', messages: hello });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ type: 'credential_unreadable', param: 'provider', message: expect.stringMatching(/openai .*enter it again/) });
    expect(openrouter.seen.length + openai.seen.length).toBe(upstream);
    expect((await balance('stale')).toFixed(6)).toBe('1.000000');
    expect(await prisma.llmUsage.count({ where: { userId: users.stale } })).toBe(0);
    // Entered again, the user's own key serves it.
    await h.call('PUT', '/v1/providers/openai', { token: tokens.stale, body: { apiKey: USER_OPENAI_KEY } });
    expect((await chat('stale', { model: 'gpt-4o', messages: hello })).body.choices[0].message.content).toMatch(/^openai/);
  });

  it('charges a call that costs less than a micro-dollar', async () => {
    await topUp('tiny', '1');
    openrouter.usage = { prompt_tokens: 1, completion_tokens: 0 };
    try {
      expect((await chat('tiny', { model: 'gpt-4o-mini', messages: hello })).status).toBe(200);
    } finally {
      openrouter.usage = { prompt_tokens: 1234, completion_tokens: 567 };
    }
    // 1 × $0.00000015 × 1.2: it rounded to $0.000000 before.
    const row = await prisma.llmUsage.findFirstOrThrow({ where: { userId: users.tiny } });
    expect(row.costUsd.toFixed(12)).toBe('0.000000180000');
    expect((await balance('tiny')).toFixed(12)).toBe('0.999999820000');
    expect((await h.call('GET', '/v1/credits', { token: tokens.tiny })).body.balanceUsd).toBe('0.99999982');
  });

  it('does not call the provider again when a job is retried after the provider answered', async () => {
    const acts = createLlmActivities({ prisma, llm: new LlmRouter(prisma, settings, pino({ level: 'silent' })) });
    const jobId = `llm-job-${randomUUID()}`;
    const request = { model: 'claude-3.5-sonnet', messages: [{ role: 'user' as const, content: 'plan it' }] };
    const calls = () => openrouter.seen.filter((s) => s.path.endsWith('/chat/completions')).length;
    await topUp('jobber', '1');
    const before = calls();
    const balanceBefore = await balance('jobber');
    try {
      // The job's record is missing, so the write after the provider's answer fails, as a crash there would.
      await expect(new MockActivityEnvironment().run(acts.runLlmJob, jobId, users.jobber, request)).rejects.toThrow();
      expect(calls()).toBe(before + 1);
      await prisma.llmJob.create({ data: { id: jobId, userId: users.jobber } });
      const outcome = await new MockActivityEnvironment().run(acts.runLlmJob, jobId, users.jobber, request);
      expect(calls()).toBe(before + 1);
      expect(outcome).toMatchObject({ provider: 'openrouter', model: 'anthropic/claude-3.5-sonnet', costUsd: '0.0146484' });
      expect(await prisma.llmUsage.count({ where: { idempotencyKey: jobId } })).toBe(1);
      expect(balanceBefore.minus(await balance('jobber')).toFixed(7)).toBe('0.0146484');
      expect((await prisma.llmJob.findUniqueOrThrow({ where: { id: jobId } })).status).toBe('succeeded');
      expect(await prisma.llmAnswer.count({ where: { idempotencyKey: jobId } })).toBe(0);
    } finally {
      await prisma.llmJob.deleteMany({ where: { id: jobId } });
      await prisma.llmAnswer.deleteMany({ where: { idempotencyKey: jobId } });
    }
  });

  it('lets a retried job replace the hold its crashed attempt left, rather than be refused for it', async () => {
    const router = new LlmRouter(prisma, settings, pino({ level: 'silent' }));
    const acts = createLlmActivities({ prisma, llm: router });
    const jobId = `llm-job-${randomUUID()}`;
    // Room for one hold of this call ($0.018162: 45 prompt tokens at most and 1000 out, × 1.2), not two.
    await topUp('crashed', '0.03');
    expect(await router.ledger.hold(users.crashed, '0.02', jobId)).toBeDefined();
    await prisma.llmJob.create({ data: { id: jobId, userId: users.crashed } });
    try {
      const request = { model: 'claude-3.5-sonnet', messages: [{ role: 'user' as const, content: 'plan it' }], max_tokens: 1000 };
      const outcome = await new MockActivityEnvironment().run(acts.runLlmJob, jobId, users.crashed, request);
      expect(outcome).toMatchObject({ provider: 'openrouter', costUsd: '0.0146484' });
      expect(await prisma.llmHold.count({ where: { userId: users.crashed } })).toBe(0);
      expect((await balance('crashed')).toFixed(7)).toBe('0.0153516');
    } finally {
      await prisma.llmJob.deleteMany({ where: { id: jobId } });
    }
  });

  it('keeps users’ keys encrypted at rest, never returns them, never logs them', async () => {
    const rows = await prisma.$queryRaw<{ provider: string; secret: Buffer }[]>`SELECT provider, secret FROM llm_credentials WHERE user_id = ${users.byok}`;
    expect(rows.map((r) => r.provider).sort()).toEqual(['anthropic', 'ollama', 'openai']);
    for (const r of rows) {
      const raw = Buffer.from(r.secret);
      for (const key of [USER_OPENAI_KEY, USER_ANTHROPIC_KEY]) {
        expect(raw.includes(Buffer.from(key))).toBe(false);
        expect(raw.toString('base64')).not.toContain(Buffer.from(key).toString('base64'));
      }
    }
    const listed = await h.call('GET', '/v1/providers', { token: tokens.byok });
    expect(listed.body.providers.map((p: { provider: string }) => p.provider)).toEqual(['anthropic', 'ollama', 'openai']);
    expect(JSON.stringify(listed.body)).not.toMatch(/sk-/);
    // Another user's row does not open as this user's (the owner is bound into the ciphertext).
    const stolen = rows.find((r) => r.provider === 'openai')!;
    await prisma.llmCredential.upsert({ where: { userId_provider: { userId: users.broke, provider: 'openai' } }, create: { userId: users.broke, provider: 'openai', secret: new Uint8Array(stolen.secret) }, update: { secret: new Uint8Array(stolen.secret) } });
    expect((await chat('broke', { model: 'gpt-4o', messages: hello })).status).toBe(409);
    expect(logText.length).toBeGreaterThan(0);
    for (const secret of [USER_OPENAI_KEY, USER_ANTHROPIC_KEY, PODEX_KEY, ENCRYPTION_KEY]) expect(logText).not.toContain(secret);
  });
});

describe('durable LLM jobs', () => {
  const openrouter = new FakeOpenAi('openrouter', MODELS.map((m) => ({ id: m.openrouter, pricing: price(m.openrouter) })), PODEX_KEY);
  let h: Harness;
  let worker: ChildProcess | undefined;
  let workerLog = '';
  const user = uniq('llm-job');
  let token: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    await openrouter.start('/api/v1');
    const settings: Partial<LlmSettings> = { openrouterApiKey: PODEX_KEY, openrouterBaseURL: openrouter.url, encryptionKey: ENCRYPTION_KEY };
    h = await startHarness('llm-jobs', { llm: { ...(await import('../lib/llm')).llmSettings(config()), ...settings } }, { inProcessWorker: false });
    env = { OPENROUTER_API_KEY: PODEX_KEY, OPENROUTER_BASE_URL: openrouter.url, LLM_KEYS_ENCRYPTION_KEY: ENCRYPTION_KEY, LOG_LEVEL: 'debug' };
    token = await mintToken(config().JWT_SECRET_KEY, user, 'user');
    await h.call('POST', `/credits/${user}`, { body: { addUsd: '5' }, headers: { 'idempotency-key': randomUUID() } });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await h.deps.prisma.llmCredit.deleteMany({ where: { userId: user } });
    await h.close();
    await openrouter.stop();
  });

  const start = async () => {
    const w = await spawnWorker(h.taskQueue, env);
    w.stdout!.on('data', (d: Buffer) => (workerLog += d.toString()));
    return w;
  };

  it('survives a SIGKILL of its worker mid-call and is billed exactly once', async () => {
    worker = await start();
    openrouter.delayMs = 4_000;
    const res = await h.call('POST', '/v1/jobs', { token, body: { model: 'claude-3.5-sonnet', messages: [{ role: 'user', content: 'write the migration plan' }] } });
    expect(res.status).toBe(202);
    const id = res.body.id as string;
    await eventually(async () => openrouter.seen.some((s) => s.path.endsWith('/chat/completions')), 20_000, 50);
    worker.kill('SIGKILL');
    await new Promise((r) => worker!.once('exit', r));
    openrouter.delayMs = 0;
    worker = await start();

    const job = await eventually(async () => {
      const j = await h.call('GET', `/v1/jobs/${id}`, { token });
      return j.body.status === 'succeeded' ? j.body : undefined;
    }, 90_000, 250);
    expect(job.result.outcome).toMatchObject({ provider: 'openrouter', model: 'anthropic/claude-3.5-sonnet', costUsd: '0.0146484' });
    expect(job.result.completion.choices[0].message.content).toMatch(/^openrouter/);
    expect(openrouter.seen.filter((s) => s.path.endsWith('/chat/completions')).length).toBeGreaterThanOrEqual(2);
    const billed = await h.deps.prisma.llmUsage.findMany({ where: { idempotencyKey: id } });
    expect(billed).toHaveLength(1);
    expect((await h.call('GET', '/v1/credits', { token })).body.balanceUsd).toBe('4.9853516');
    expect((await h.call('GET', `/v1/jobs/${id}`, { token: h.userToken })).status).toBe(404);
    expect(workerLog).not.toContain(PODEX_KEY);
  }, 150_000);
});
