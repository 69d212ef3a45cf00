/**
 * Issue 17, finding 1: a user's provider URL (Ollama) must not make the API or the worker talk
 * to the platform's own network. A loopback tripwire counts every connection it gets; whatever
 * the spelling of its address, by save, by request, by job or by a redirect, it gets none.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { mintToken } from '../api/auth';
import { config } from '../lib/config';
import { LlmRouter, llmSettings, type LlmSettings } from '../lib/llm';
import { createPrisma } from '../lib/prisma';
import { eventually, startHarness, type Harness } from './harness';
import { uniq } from './helpers';
import { tripwire } from './tripwire';

const SECRET_BODY = `TEMPORAL-HISTORY-${randomBytes(6).toString('hex')}`;

describe('a user’s provider URL cannot reach the platform’s network', () => {
  let trap4: Awaited<ReturnType<typeof tripwire>>;
  let trap6: Awaited<ReturnType<typeof tripwire>>;
  let allowed: http.Server;
  let allowedUrl = '';
  const seenByAllowed: string[] = [];
  let h: Harness;
  let permissive: LlmRouter;
  const prisma = createPrisma(config().DATABASE_URL, 2);
  const users = { save: uniq('ssrf-save'), call: uniq('ssrf-call'), job: uniq('ssrf-job'), redirect: uniq('ssrf-redirect') };
  const tokens: Record<string, string> = {};
  const hello = [{ role: 'user', content: 'hello' }];

  beforeAll(async () => {
    [trap4, trap6] = await Promise.all([tripwire('127.0.0.1'), tripwire('::1')]);
    // The one host the operator allows (127.0.0.2): it redirects to the tripwire, or answers errors carrying internal text.
    allowed = http.createServer((req, res) => {
      seenByAllowed.push(`${req.method} ${req.url}`);
      req.resume();
      const to = `http://127.0.0.1:${trap4.port}/v1/chat/completions`;
      if (req.url?.startsWith('/r307/')) return void res.writeHead(307, { location: to }).end();
      if (req.url?.startsWith('/r302/')) return void res.writeHead(302, { location: to }).end();
      if (req.url?.startsWith('/stall/')) return void res.writeHead(200, { 'content-type': 'application/json' }).write('{"id":');
      if (req.url?.startsWith('/json404/')) return void res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `${SECRET_BODY} workflow history`, type: 'not_found' } }));
      res.writeHead(403, { 'content-type': 'text/html' }).end(`<html><title>Prometheus</title>${SECRET_BODY}</html>`);
    });
    allowed.listen(0, '127.0.0.2');
    await new Promise((r) => allowed.once('listening', r));
    allowedUrl = `http://127.0.0.2:${(allowed.address() as AddressInfo).port}`;

    const logger = pino({ level: 'silent' });
    const base: LlmSettings = { ...llmSettings(config()), openrouterApiKey: undefined, encryptionKey: randomBytes(32).toString('hex'), maxRetries: 1, timeoutMs: 10_000 };
    // The worker allows nothing; the API allows the redirecting host only; `permissive` stores URLs the API would refuse (an allow list since narrowed, or a name that resolved elsewhere when saved).
    h = await startHarness('llm-ssrf', { llm: { ...base, providerAllow: ['127.0.0.2'], timeoutMs: 3_000 } }, { overrides: { logger, llm: new LlmRouter(prisma, { ...base, providerAllow: [] }, logger) } });
    permissive = new LlmRouter(prisma, { ...base, providerAllow: ['127.0.0.0/8', '::1', 'localhost'] }, logger);
    for (const [k, id] of Object.entries(users)) tokens[k] = await mintToken(config().JWT_SECRET_KEY, id, 'user');
  });

  afterAll(async () => {
    await prisma.llmCredential.deleteMany({ where: { userId: { in: Object.values(users) } } });
    await prisma.llmJob.deleteMany({ where: { userId: users.job } });
    await h?.close();
    await prisma.$disconnect();
    allowed.closeAllConnections();
    await new Promise((r) => allowed.close(r));
    await Promise.all([trap4.close(), trap6.close()]);
  });

  const forbidden = () => {
    const p = trap4.port;
    return [
      `http://127.0.0.1:${p}`,
      `https://127.0.0.1:${p}`,
      `http://localhost:${p}`,
      `https://localhost:${p}`,
      `https://LOCALHOST.:${p}`,
      `http://[::ffff:127.0.0.1]:${p}`,
      `https://[::ffff:7f00:1]:${p}`,
      `http://0177.0.0.1:${p}`,
      `https://0x7f000001:${p}`,
      `http://2130706433:${p}`,
      `https://127.1:${p}`,
      `https://[::1]:${trap6.port}`,
    ];
  };

  it('refuses to save a provider URL that points at loopback, however it is spelled', async () => {
    for (const baseUrl of forbidden()) {
      const res = await h.call('PUT', '/v1/providers/ollama', { token: tokens.save, body: { baseUrl } });
      expect([baseUrl, res.status, res.body?.error?.param]).toEqual([baseUrl, 400, 'baseUrl']);
    }
    expect(await prisma.llmCredential.count({ where: { userId: users.save } })).toBe(0);
    expect(trap4.count() + trap6.count()).toBe(0);
  });

  it('refuses at connect time a stored URL that now points at loopback (streamed or not), without falling back', async () => {
    const answers: unknown[][] = [];
    for (const [i, baseUrl] of forbidden().entries()) {
      await permissive.setCredential(users.call, 'ollama', { baseUrl });
      const res = await h.call('POST', '/v1/chat/completions', { token: tokens.call, body: { model: 'llama-3.1-70b', messages: hello, stream: i % 3 === 0 } });
      answers.push([baseUrl, res.status, res.body?.error?.param, res.body?.error?.message]);
    }
    expect(trap4.count() + trap6.count()).toBe(0);
    for (const [baseUrl, ...answer] of answers) expect([baseUrl, ...answer]).toEqual([baseUrl, 400, 'baseUrl', expect.stringMatching(/^baseUrl: your ollama URL is refused/)]);
  });

  it('does not follow a redirect from an allowed host to loopback', async () => {
    const answers: [string, number, string][] = [];
    for (const code of ['r307', 'r302']) {
      const put = await h.call('PUT', '/v1/providers/ollama', { token: tokens.redirect, body: { baseUrl: `${allowedUrl}/${code}` } });
      expect(put.status).toBe(204);
      const res = await h.call('POST', '/v1/chat/completions', { token: tokens.redirect, body: { model: 'llama-3.1-70b', messages: hello } });
      answers.push([code, res.status, res.body.error.message]);
      expect(seenByAllowed).toContain(`POST /${code}/v1/chat/completions`);
    }
    expect(trap4.count()).toBe(0);
    expect(answers).toEqual([
      ['r307', 502, 'ollama: redirects are not followed'],
      ['r302', 502, 'ollama: redirects are not followed'],
    ]);
  });

  it('never echoes the upstream’s answer body in errors', async () => {
    for (const [path, status] of [
      ['json404', 404],
      ['html403', 502],
    ] as const) {
      await h.call('PUT', '/v1/providers/ollama', { token: tokens.redirect, body: { baseUrl: `${allowedUrl}/${path}` } });
      const res = await h.call('POST', '/v1/chat/completions', { token: tokens.redirect, body: { model: 'llama-3.1-70b', messages: hello } });
      expect([path, res.status]).toEqual([path, status]);
      expect(res.body.error.message).toMatch(/^ollama answered (404 \(not_found\)|403)$/);
      expect(JSON.stringify(res.body)).not.toContain(SECRET_BODY);
    }
  });

  it('bounds the whole exchange: an answer that stalls after its headers is a 502 at the timeout', async () => {
    await h.call('PUT', '/v1/providers/ollama', { token: tokens.redirect, body: { baseUrl: `${allowedUrl}/stall` } });
    const t0 = Date.now();
    const res = await h.call('POST', '/v1/chat/completions', { token: tokens.redirect, body: { model: 'llama-3.1-70b', messages: hello } });
    expect([res.status, res.body.error.message]).toEqual([502, 'ollama: provider request timed out']);
    expect(Date.now() - t0).toBeLessThan(8_000);
  });

  it('refuses in the worker too: a durable job with a stored loopback URL fails without a connection', async () => {
    await permissive.setCredential(users.job, 'ollama', { baseUrl: `http://localhost:${trap4.port}` });
    const start = await h.call('POST', '/v1/jobs', { token: tokens.job, body: { model: 'llama-3.1-70b', messages: hello } });
    expect(start.status).toBe(202);
    const job = await eventually(async () => {
      const j = await h.call('GET', `/v1/jobs/${start.body.id}`, { token: tokens.job });
      return j.body.status === 'failed' ? j.body : undefined;
    }, 30_000, 200);
    expect(job.error).toMatch(/baseUrl: your ollama URL is refused/);
    expect(trap4.count()).toBe(0);
  }, 60_000);
});
