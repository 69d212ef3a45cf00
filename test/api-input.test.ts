import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import zlib from 'node:zlib';
import { Client, Connection } from '@temporalio/client';
import pino from 'pino';
import { config } from '../lib/config';
import { createPrisma } from '../lib/prisma';
import { createRedis } from '../lib/redis';
import { temporalConnectionOptions, temporalDataConverter } from '../lib/temporal';
import { MAX_BALANCE_USD } from '../lib/llm-ledger';
import { apiSettings, createApiServer, createApp } from '../api/app';
import { mintToken } from '../api/auth';
import { terminateOpenWorkflows, testFleet, uniq } from './helpers';

/**
 * Bad input and its answers (issue 18): every client error is a 4xx with a JSON body naming the
 * problem, none is a 5xx, and none is logged as an error.
 */

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function send(url: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method: o.method ?? 'GET', headers: o.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Bytes straight onto a socket, for requests no HTTP client would send; the whole answer back. */
function raw(url: string, bytes: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () => s.end(bytes));
    let out = '';
    s.on('data', (d) => (out += d.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}
const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));

describe('API input (issue 18)', () => {
  const c = config();
  const prisma = createPrisma(c.DATABASE_URL, 4);
  const redis = createRedis(c.REDIS_URL);
  const taskQueue = uniq('api-input');
  const userPrefix = `api-input-${randomBytes(4).toString('hex')}`;
  const logs: Json[] = [];
  let connection: Connection;
  let temporal: Client;
  let server: http.Server;
  let close: () => Promise<void>;
  let url: string;
  let admin: Record<string, string>;
  let serverId: string;

  beforeAll(async () => {
    connection = await Connection.connect(temporalConnectionOptions(c));
    temporal = new Client({ connection, namespace: c.TEMPORAL_NAMESPACE, dataConverter: temporalDataConverter(c) });
    // Every log line at every level, to check what client errors leave behind.
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line) as Json);
        done();
      },
    });
    const logger = pino({ level: 'debug' }, sink);
    const settings = apiSettings(c);
    // No provider is reachable: were a chat to get past validation, it would fail on loopback, never leave the machine.
    const llm = { ...settings.llm, openrouterBaseURL: 'http://127.0.0.1:9/api/v1', openaiBaseURL: 'http://127.0.0.1:9/v1', anthropicBaseURL: 'http://127.0.0.1:9', maxRetries: 0 };
    const app = createApp({ fleet: testFleet(), prisma, redis, temporal, logger, settings: { ...settings, taskQueue, rateLimitPerMinute: 1_000_000, rateLimitPerPrincipal: 1_000_000, llm } });
    server = createApiServer(app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await (app.locals.close as () => Promise<void>)();
    };
    admin = { authorization: `Bearer ${await mintToken(c.JWT_SECRET_KEY, `${userPrefix}-admin`, 'admin')}` };
    // A real row, so a value the schema let through would reach PostgreSQL's columns.
    const s = await prisma.workspaceServer.create({
      data: { name: 'api-input', hostname: `${uniq('api-input')}.local`, ipAddress: '127.0.0.77', totalCpu: 4, totalMemoryMb: 1024, totalDiskGb: 10, status: 'error' },
    });
    serverId = s.id;
  });

  afterAll(async () => {
    await close?.();
    await terminateOpenWorkflows(temporal, taskQueue).catch(() => undefined);
    await prisma.workspaceServer.deleteMany({ where: { id: serverId } });
    await prisma.userLimits.deleteMany({ where: { userId: { startsWith: userPrefix } } });
    await prisma.llmCredit.deleteMany({ where: { userId: { startsWith: userPrefix } } });
    await prisma.llmTopUp.deleteMany({ where: { userId: { startsWith: userPrefix } } });
    await prisma.auditLog.deleteMany({ where: { OR: [{ actor: { startsWith: userPrefix } }, { targetId: serverId }] } });
    await Promise.allSettled([prisma.$disconnect(), redis.quit(), connection.close()]);
  });

  /** The answer is a client error with a JSON body; in the API's shape `{error, message}` (or OpenAI's under /v1). */
  function expectClientError(a: Answer, status: number, message?: RegExp) {
    expect({ status: a.status, body: a.text }).toEqual({ status, body: expect.any(String) });
    expect(a.headers['content-type']).toMatch(/^application\/json/);
    const e = a.json.error;
    const text = typeof e === 'object' ? e.message : a.json.message;
    expect(typeof (typeof e === 'object' ? e.type : e)).toBe('string');
    expect(text).toEqual(expect.any(String));
    if (message) expect(text).toMatch(message);
  }

  describe('request bodies', () => {
    const json = { 'content-type': 'application/json' };
    const patch = (headers: Record<string, string>, body: string | Buffer) => send(url, `/servers/${serverId}`, { method: 'PATCH', headers: { ...admin, ...headers }, body });

    it('a body over 1 MiB is a 413', async () => {
      expectClientError(await patch(json, JSON.stringify({ name: 'x'.repeat(1024 * 1024) })), 413, /larger than 1 MiB/);
    });

    it('a charset other than UTF-8 is a 415 naming it', async () => {
      for (const charset of ['latin1', 'bogus', 'utf-16']) {
        expectClientError(await patch({ 'content-type': `application/json; charset=${charset}` }, '{"name":"x"}'), 415, new RegExp(`charset "${charset}"`));
      }
    });

    it('a Content-Encoding other than gzip, deflate or identity is a 415 naming it, with Accept-Encoding', async () => {
      for (const coding of ['br', 'compress', 'bogus', 'zstd']) {
        const a = await patch({ ...json, 'content-encoding': coding }, '{"name":"x"}');
        expectClientError(a, 415, new RegExp(`Content-Encoding "${coding}"`));
        expect(a.headers['accept-encoding']).toBe('gzip, deflate');
      }
    });

    it('a body that is not what its Content-Encoding says is a 400; a real gzip body is read', async () => {
      expectClientError(await patch({ ...json, 'content-encoding': 'gzip' }, '{"name":"x"}'), 400, /not valid gzip/);
      const gz = zlib.gzipSync('{"name":"gzipped"}');
      expectClientError(await patch({ ...json, 'content-encoding': 'gzip' }, gz.subarray(0, gz.length - 8)), 400, /not valid gzip/);
      expectClientError(await patch({ ...json, 'content-encoding': 'deflate' }, 'not deflated'), 400, /not valid deflate/);
      const ok = await patch({ ...json, 'content-encoding': 'gzip' }, gz);
      expect([ok.status, ok.json.name]).toEqual([200, 'gzipped']);
    });

    it('malformed JSON, JSON nested past the limit, and JSON that is not an object are 400s', async () => {
      expectClientError(await patch(json, '{"name": '), 400, /not valid JSON/);
      expectClientError(await patch(json, '"a string"'), 400, /not valid JSON/);
      expectClientError(await patch(json, `{"labels":${'['.repeat(5000)}${']'.repeat(5000)}}`), 400, /deeper than 64 levels/);
      const arr = await patch(json, '[{"name":"x"}]');
      expectClientError(arr, 400, /body: .*expected object, received array/);
      // The OpenAI-compatible routes refuse it before any provider is asked (a stack overflow in the SDK before: 500).
      const deepChat = `{"model":"gpt-4o","messages":[{"role":"user","content":[{"x":${'['.repeat(5000)}${']'.repeat(5000)}}]}]}`;
      const chat = await send(url, '/v1/chat/completions', { method: 'POST', headers: { ...admin, ...json }, body: deepChat });
      expectClientError(chat, 400, /deeper than 64 levels/);
      expect(chat.json.error).toMatchObject({ type: 'invalid_json', param: null });
    });

    it('none of these is logged as an error, nor with a stack', async () => {
      await patch({ 'content-type': 'application/json; charset=latin1' }, '{}');
      await patch({ ...json, 'content-encoding': 'gzip' }, 'plain');
      await patch(json, '{bad');
      expect(logs.filter((l) => l.level >= 40 || 'stack' in (l.err ?? {}))).toEqual([]);
      expect(logs.filter((l) => l.msg === 'client error').map((l) => l.status)).toEqual(expect.arrayContaining([415, 400]));
    });
  });

  describe('numbers', () => {
    type Field = { where: 'body' | 'query'; path: (string | number)[]; schema: Json };
    let doc: Json;
    const resolve = (node: Json | undefined): Json | undefined => {
      let n = node;
      for (let i = 0; n?.$ref && i < 10; i++) n = (n.$ref as string).slice(2).split('/').reduce((o: Json, k: string) => o?.[k], doc);
      return n;
    };
    /** The number fields of a JSON Schema, by path (an array's items at index 0). */
    const numbersIn = (schema: Json | undefined, path: (string | number)[] = []): { path: (string | number)[]; schema: Json }[] => {
      const s = resolve(schema);
      if (!s) return [];
      const variants = (s.anyOf ?? s.oneOf ?? s.allOf) as Json[] | undefined;
      if (variants) return variants.flatMap((v) => numbersIn(v, path));
      const types = [s.type].flat();
      if (types.includes('integer') || types.includes('number')) return [{ path, schema: s }];
      if (s.properties) return Object.entries(s.properties as Json).flatMap(([k, v]) => numbersIn(v as Json, [...path, k]));
      if (s.items) return numbersIn(s.items as Json, [...path, 0]);
      return [];
    };
    /** Values no number field may take: beyond its bounds and the columns', fractions for integers, not numbers at all. */
    const badValues = (s: Json, where: 'body' | 'query'): unknown[] => {
      if (s.const !== undefined) return [Number(s.const) + 1, 'abc'];
      const candidates: unknown[] = [1e20, -1e20, 3_000_000_000, 9_007_199_254_740_991, -1, 'abc', s.maximum + 1, s.minimum - 1, s.exclusiveMinimum, (s.minimum ?? 0) + 0.5];
      if (where === 'query') candidates.push('1e400', '1,5');
      const fits = (v: unknown) =>
        typeof v === 'number' &&
        Number.isFinite(v) &&
        (s.type !== 'integer' || Number.isInteger(v)) &&
        v >= (s.minimum ?? -Infinity) &&
        v <= (s.maximum ?? Infinity) &&
        v > (s.exclusiveMinimum ?? -Infinity);
      return candidates.filter((v) => v !== undefined && !Number.isNaN(v) && !fits(v));
    };
    const put = (path: (string | number)[], value: unknown): unknown => {
      if (!path.length) return value;
      const [k, ...rest] = path;
      return typeof k === 'number' ? [put(rest, value)] : { [k]: put(rest, value) };
    };
    const pathParam = (name: string, schema: Json, route: string): string => {
      if (schema.enum) return String(schema.enum[0]);
      if (name === 'id' && route.startsWith('/cutovers')) return `cutover-${'0'.repeat(32)}`;
      if (name === 'id' && route.startsWith('/servers')) return serverId;
      if (schema.format === 'uuid' || name === 'id' || name === 'windowId') return randomUUID();
      return `${userPrefix}-target`;
    };

    beforeAll(async () => {
      doc = (await send(url, '/openapi.json')).json;
    });

    /** Every operation's number fields (body and query), from the document the zod request schemas generate. */
    function operations() {
      const out: { method: string; route: string; url: string; upgrade: boolean; fields: Field[] }[] = [];
      for (const [route, item] of Object.entries(doc.paths as Json)) {
        for (const [method, raw] of Object.entries(item as Json)) {
          if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
          const o = raw as Json;
          const params = [...((item as Json).parameters ?? []), ...(o.parameters ?? [])].map((p: Json) => resolve(p)!);
          let path = route;
          for (const p of params.filter((x) => x.in === 'path')) path = path.replace(`{${p.name}}`, encodeURIComponent(pathParam(p.name, resolve(p.schema) ?? {}, route)));
          const fields: Field[] = [
            ...numbersIn(resolve(o.requestBody)?.content?.['application/json']?.schema).map((f) => ({ ...f, where: 'body' as const })),
            ...params.filter((p) => p.in === 'query').flatMap((p) => numbersIn(p.schema, [p.name]).map((f) => ({ ...f, where: 'query' as const }))),
          ];
          if (fields.length) out.push({ method: method.toUpperCase(), route, url: path, upgrade: '101' in (o.responses ?? {}), fields });
        }
      }
      return out;
    }

    /** Whole numbers that are not stored in an integer column: a BigInt id to page by, the provider's seed. */
    const WIDER_THAN_INT32 = ['GET /audit before', 'POST /v1/chat/completions seed', 'POST /v1/jobs seed'];

    it('every number a request may carry has a lower and an upper bound, a whole one within PostgreSQL’s integer', () => {
      const unbounded = operations().flatMap((op) =>
        op.fields
          .filter((f) => f.schema.const === undefined && ((f.schema.minimum ?? f.schema.exclusiveMinimum) === undefined || f.schema.maximum === undefined))
          .map((f) => `${op.method} ${op.route} ${f.where} ${f.path.join('.')}`),
      );
      expect(unbounded).toEqual([]);
      const wide = operations().flatMap((op) =>
        op.fields.filter((f) => f.schema.type === 'integer' && !(f.schema.maximum <= 2_147_483_647 && f.schema.minimum >= -2_147_483_648)).map((f) => `${op.method} ${op.route} ${f.path.join('.')}`),
      );
      expect(wide.sort()).toEqual([...WIDER_THAN_INT32].sort());
      // The walk below sees the fields this issue was about.
      const named = operations().flatMap((op) => op.fields.map((f) => `${op.method} ${op.route} ${f.path.join('.')}`));
      expect(named).toEqual(expect.arrayContaining(['PATCH /servers/{id} totalMemoryMb', 'PATCH /servers/{id} totalDiskGb', 'PUT /users/{id}/limits maxMemoryMb', 'GET /audit before', 'POST /workspaces constraints.gpu.count', 'POST /v1/chat/completions max_tokens']));
    });

    it('a number out of range, fractional where whole, or not a number is a 400 naming its field, never a 5xx', async () => {
      const wrong: string[] = [];
      for (const op of operations()) {
        for (const f of op.fields) {
          const field = f.path.join('.');
          for (const value of badValues(f.schema, f.where)) {
            const query = f.where === 'query' ? `?${encodeURIComponent(String(f.path[0]))}=${encodeURIComponent(String(value))}` : '';
            const headers: Record<string, string> = { ...admin, ...(f.where === 'body' ? { 'content-type': 'application/json' } : {}) };
            if (op.upgrade) Object.assign(headers, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') });
            const a = await send(url, `${op.url}${query}`, { method: op.method, headers, body: f.where === 'body' ? JSON.stringify(put(f.path, value)) : undefined });
            // The message names it (`invalid query: cols: …`; OpenAI's shape under /v1), and details.fields where there are details.
            const message: string = (typeof a.json?.error === 'object' ? a.json.error.message : a.json?.message) ?? '';
            const fields: { field: string }[] | undefined = a.json?.details?.fields;
            const names = new RegExp(`(^invalid \\w+: |^|; )${field.replace(/\./g, '\\.')}: `).test(message) && (!fields || fields.some((p) => p.field === field));
            if (a.status !== 400 || !names) wrong.push(`${op.method} ${op.route} ${f.where} ${field}=${JSON.stringify(value)}: ${a.status} ${a.text.slice(0, 160)}`);
          }
        }
      }
      expect(wrong).toEqual([]);
    });

    it('the values the columns overflowed on are refused before PostgreSQL sees them (a 500 before)', async () => {
      for (const body of [{ totalMemoryMb: 3_000_000_000 }, { totalDiskGb: 9_007_199_254_740_991 }]) {
        const a = await send(url, `/servers/${serverId}`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        expectClientError(a, 400, new RegExp(`^invalid body: ${Object.keys(body)[0]}: Too big`));
      }
      const limits = await send(url, `/users/${userPrefix}-u1/limits`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ maxMemoryMb: 3_000_000_000 }) });
      expectClientError(limits, 400, /maxMemoryMb: Too big/);
      expect((await prisma.workspaceServer.findUniqueOrThrow({ where: { id: serverId } })).totalMemoryMb).toBe(1024);
    });
  });

  describe('fields by name, all at once', () => {
    it('an unknown field is named by its full path, beside every other problem', async () => {
      const a = await send(url, '/workspaces', {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'ok', tier: 'free', colour: 'red', previewPorts: [70000], constraints: { colour: 'blue', gpu: { count: 99 } } }),
      });
      expectClientError(a, 400);
      expect(a.json.details.fields.map((f: { field: string }) => f.field).sort()).toEqual(['colour', 'constraints.colour', 'constraints.gpu.count', 'previewPorts.0']);
      expect(a.json.message).toMatch(/constraints\.colour: unknown field/);
    });

    it('a cutover plan’s contradictions are reported with its other problems, not after them', async () => {
      const a = await send(url, '/cutovers', {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ zoneId: 'nope', targetIp: '192.0.2.1', healthUrls: ['https://example.com/'], records: [{ name: 'app', type: 'CNAME', content: 'x.example.com' }, { name: 'app', type: 'A', content: '192.0.2.1' }] }),
      });
      expectClientError(a, 400);
      expect(a.json.details.fields.map((f: { field: string }) => f.field).sort()).toEqual(['records.1.name', 'zoneId']);
    });

    it('under /v1 every problem is in OpenAI’s message, the first in param', async () => {
      const a = await send(url, '/v1/chat/completions', { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ model: '', messages: [], temperature: 9, colour: 1 }) });
      expectClientError(a, 400);
      expect(a.json.error.type).toBe('invalid_request_error');
      for (const f of ['model', 'messages', 'temperature', 'colour']) expect(a.json.error.message).toMatch(new RegExp(`(^|; )${f}: `));
      expect(a.json.error.param).toBe('model');
    });

    it('under /v1 a provider’s missing credential and a job’s stream are reported with the body’s other problems', async () => {
      const key = await send(url, '/v1/providers/openai', { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ baseUrl: 'not a url', colour: 1 }) });
      expectClientError(key, 400);
      for (const f of ['baseUrl', 'colour', 'apiKey']) expect(key.json.error.message).toMatch(new RegExp(`(^|; )${f}: `));
      const job = await send(url, '/v1/jobs', { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ model: '', messages: [{ role: 'user', content: 'hi' }], stream: true }) });
      expectClientError(job, 400);
      for (const f of ['model', 'stream']) expect(job.json.error.message).toMatch(new RegExp(`(^|; )${f}: `));
    });
  });

  describe('every 404 and 405 has a body', () => {
    it('DELETE /v1/providers/:p with nothing stored: OpenAI’s shape, naming what is missing', async () => {
      const user = { authorization: `Bearer ${await mintToken(c.JWT_SECRET_KEY, `${userPrefix}-nokeys`, 'user')}` };
      const a = await send(url, '/v1/providers/openai', { method: 'DELETE', headers: user });
      expectClientError(a, 404, /no openai credential stored/);
      expect(a.json.error).toMatchObject({ type: 'not_found', param: 'provider' });
    });

    it('the top-up answers every error in OpenAI’s shape, as its route does (a body it cannot read, a user)', async () => {
      const bad = await send(url, `/credits/${userPrefix}-shape`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json', 'idempotency-key': randomUUID() }, body: '{"addUsd":' });
      expectClientError(bad, 400, /not valid JSON/);
      expect(bad.json.error).toMatchObject({ type: 'invalid_json', param: null });
      const user = { authorization: `Bearer ${await mintToken(c.JWT_SECRET_KEY, `${userPrefix}-plain`, 'user')}`, 'content-type': 'application/json' };
      const refused = await send(url, `/credits/${userPrefix}-shape`, { method: 'POST', headers: user, body: '{"addUsd":"1"}' });
      expectClientError(refused, 403, /admin role required/);
      expect(refused.json.error.type).toBe('forbidden');
    });

    it('an unknown route is a 404, under /v1 in OpenAI’s shape', async () => {
      expectClientError(await send(url, '/no/such/thing', { headers: admin }), 404, /no such route: GET \/no\/such\/thing/);
      const v1 = await send(url, '/v1/no-such-thing', { method: 'POST', headers: admin });
      expectClientError(v1, 404, /no such route/);
      expect(v1.json.error.type).toBe('not_found');
    });

    it('a known path asked with another method is a 405 with Allow', async () => {
      const a = await send(url, '/servers', { method: 'PUT', headers: admin });
      expectClientError(a, 405, /PUT is not allowed on \/servers/);
      expect(a.headers.allow).toBe('GET, HEAD, POST');
      const one = await send(url, `/servers/${serverId}`, { method: 'POST', headers: admin });
      expectClientError(one, 405);
      expect(one.headers.allow).toBe('GET, HEAD, PATCH, DELETE');
    });

    it('the fleet console: a missing file is a 404, a write a 405, a bad path a 400, all JSON', async () => {
      expectClientError(await send(url, '/admin/no-such-file.js'), 404, /no such route or file/);
      const post = await send(url, '/admin/index.html', { method: 'POST', body: 'x' });
      expectClientError(post, 405);
      expect(post.headers.allow).toBe('GET, HEAD');
      expectClientError(await send(url, '/admin/%E0%A4%A'), 400, /percent-encoding/);
    });

    it('a WebSocket upgrade to an unknown path gets a 404 with a JSON body', async () => {
      const answer = await raw(url, 'GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 404 Not Found');
      expect(answer).toMatch(/content-type: application\/json/);
      expect(bodyOf(answer)).toEqual({ error: 'not_found', message: 'no WebSocket endpoint at /nowhere' });
    });
  });

  describe('other input that reached a 5xx', () => {
    const json = { 'content-type': 'application/json' };

    it('NUL in a body, a query or a path is a 400 naming the field (PostgreSQL refuses it: a 500 before)', async () => {
      const cases: [string, string, string, string | undefined, RegExp][] = [
        ['PATCH', `/servers/${serverId}`, 'body', '{"name":"a\\u0000b"}', /name: must not contain NUL/],
        ['PATCH', `/servers/${serverId}`, 'body', '{"labels":{"k":"a\\u0000b"}}', /labels\.k: must not contain NUL/],
        ['POST', `/servers/${serverId}/maintenance`, 'body', '{"endsAt":"2999-01-01T00:00:00Z","reason":"a\\u0000"}', /reason: must not contain NUL/],
        ['GET', '/workspaces?owner=a%00b', 'query', undefined, /owner: must not contain NUL/],
        ['GET', '/audit?targetType=a%00b', 'query', undefined, /targetType: must not contain NUL/],
        ['PUT', `/users/${userPrefix}%00/limits`, 'params', '{}', /id: must not contain NUL/],
        ['POST', `/credits/${userPrefix}%00`, 'params', '{"addUsd":"1"}', /userId: must not contain NUL/],
      ];
      for (const [method, path, where, body, message] of cases) {
        const a = await send(url, path, { method, headers: { ...admin, ...(body ? json : {}), 'idempotency-key': randomUUID() }, body });
        expectClientError(a, 400, message);
        if (!path.startsWith('/credits')) expect(a.json.message).toMatch(new RegExp(`^invalid ${where}: `));
      }
    });

    it('a repeated query parameter is a 400 saying so', async () => {
      expectClientError(await send(url, '/servers?limit=1&limit=2', { headers: admin }), 400, /limit: given more than once/);
      expectClientError(await send(url, '/workspaces?keepVolume=true&status=running&status=failed', { headers: admin }), 400, /status: given more than once/);
    });

    it('ids that are not ids: a path that does not decode, a long or malformed id (a 500 before)', async () => {
      expectClientError(await send(url, '/servers/%E0%A4%A', { headers: admin }), 400, /percent-encoding/);
      expectClientError(await send(url, '/servers/not-a-uuid', { headers: admin }), 400, /id: must be a UUID/);
      expectClientError(await send(url, `/credits/${'u'.repeat(300)}`, { method: 'POST', headers: { ...admin, ...json, 'idempotency-key': randomUUID() }, body: '{"addUsd":"1"}' }), 400, /userId: Too big/);
      expectClientError(await send(url, '/v1/jobs/a%00b', { headers: admin }), 400, /id: must be a job id/);
    });

    it('a top-up past what the balance column holds is a 422 naming addUsd, and nothing is applied (a 500 before)', async () => {
      const userId = `${userPrefix}-rich`;
      await prisma.llmCredit.create({ data: { userId, balanceUsd: '99999999' } });
      const key = randomUUID();
      const a = await send(url, `/credits/${userId}`, { method: 'POST', headers: { ...admin, ...json, 'idempotency-key': key }, body: '{"addUsd":"1.00"}' });
      expectClientError(a, 422, new RegExp(`addUsd: the balance would exceed ${MAX_BALANCE_USD.replace('.', '\\.')}`));
      expect((await prisma.llmCredit.findUniqueOrThrow({ where: { userId } })).balanceUsd.toFixed(2)).toBe('99999999.00');
      expect(await prisma.llmTopUp.count({ where: { idempotencyKey: key } })).toBe(0);
      // A user id longer than the audit log's target column still tops up (a 500 before).
      const long = `${userPrefix}-${'l'.repeat(200)}`;
      const ok = await send(url, `/credits/${long}`, { method: 'POST', headers: { ...admin, ...json, 'idempotency-key': randomUUID() }, body: '{"addUsd":"1.00"}' });
      expect([ok.status, ok.json.balanceUsd]).toEqual([200, expect.stringMatching(/^1\.0+$/)]);
    });

    it('a token whose subject no owner or actor column holds is a 401 (a 500 when the subject was written there)', async () => {
      for (const sub of ['u'.repeat(256), 'a\0b']) {
        const user = { authorization: `Bearer ${await mintToken(c.JWT_SECRET_KEY, sub, 'user')}`, ...json };
        const key = await send(url, '/v1/providers/openai', { method: 'PUT', headers: user, body: JSON.stringify({ apiKey: 'sk-test-0123456789' }) });
        expectClientError(key, 401, /token subject must be at most 255 characters, without NUL/);
        const op = { authorization: `Bearer ${await mintToken(c.JWT_SECRET_KEY, sub, 'admin')}`, ...json };
        expectClientError(await send(url, `/servers/${serverId}`, { method: 'PATCH', headers: op, body: '{"name":"api-input"}' }), 401, /token subject/);
      }
    });

    it('the Workspace Proxy’s question about a URI that does not parse is a 400, not a 503 logged as an outage', async () => {
      const host = `ws-${randomUUID()}.${new URL(apiSettings(c).workspaceBaseUrl).host}`;
      const before = logs.length;
      const a = await send(url, '/proxy/auth', { headers: { host, 'x-forwarded-uri': '//[' } });
      expectClientError(a, 400, /request URI is not valid/);
      expect(logs.slice(before).filter((l) => l.level >= 40)).toEqual([]);
    });

    it('headers over Node’s limit and requests Node cannot parse get a JSON answer', async () => {
      const big = await raw(url, `GET /healthz HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ${'k'.repeat(20_000)}\r\n\r\n`);
      expect(big.split('\r\n')[0]).toBe('HTTP/1.1 431 Request Header Fields Too Large');
      expect(bodyOf(big)).toEqual({ error: 'headers_too_large', message: expect.any(String) });
      const bad = await raw(url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n');
      expect(bad.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
      expect(bodyOf(bad)).toEqual({ error: 'bad_request', message: 'malformed HTTP request' });
    });

    it('no request of this file was logged at error level', () => {
      expect(logs.filter((l) => l.level >= 50)).toEqual([]);
    });
  });
});
