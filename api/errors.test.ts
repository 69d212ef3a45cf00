import zlib from 'node:zlib';
import { z } from 'zod';
import { check, clientErrorOf, HttpError, MAX_PROBLEMS_SHOWN, NUL_MESSAGE, nulPaths, parse, rawErrorAnswer } from './errors';
import { createWorkspaceBody, cutoverBody, drainBody, listServersQuery, maintenanceBody, restoreBody, updateServerBody } from './schemas';

const problemsOf = (schema: z.ZodType, input: unknown, where: 'body' | 'query' | 'params' = 'body') => {
  const r = check(schema, input, where);
  if ('data' in r) throw new Error(`expected problems, got ${JSON.stringify(r.data)}`);
  return r.problems;
};
const fields = (schema: z.ZodType, input: unknown, where: 'body' | 'query' | 'params' = 'body') => problemsOf(schema, input, where).map((p) => p.field);

describe('parse: every problem, each named by its full path', () => {
  it('names an unknown field by its own path, one problem per key, at any depth', () => {
    const problems = problemsOf(createWorkspaceBody, { name: 'w', tier: 'free', colour: 'red', constraints: { colour: 'blue', gpu: { count: 1, make: 'x' } } });
    expect(problems).toEqual(
      expect.arrayContaining([
        { field: 'colour', message: 'unknown field' },
        { field: 'constraints.colour', message: 'unknown field' },
        { field: 'constraints.gpu.make', message: 'unknown field' },
      ]),
    );
    expect(problems).toHaveLength(3);
  });

  it('reports invalid fields beside unknown ones, not the first alone', () => {
    expect(fields(createWorkspaceBody, { name: '-x', tier: 'huge', previewPorts: [0, 'x'], constraints: { gpu: { count: 1.5 }, colour: 1 } }).sort()).toEqual(
      ['constraints.colour', 'constraints.gpu.count', 'name', 'previewPorts.0', 'previewPorts.1', 'tier'].sort(),
    );
  });

  it('runs cross-field checks even while another field is invalid, and not on a field already wrong', () => {
    // Before: a wrong `reason` hid the past endsAt; a malformed endsAt was reported twice.
    expect(problemsOf(maintenanceBody, { endsAt: '2000-01-01T00:00:00Z', reason: 5 }).map((p) => p.field).sort()).toEqual(['endsAt', 'reason']);
    expect(problemsOf(maintenanceBody, { endsAt: 'soon' })).toEqual([{ field: 'endsAt', message: expect.stringMatching(/ISO datetime/i) }]);
    expect(fields(drainBody, { deadline: '2000-01-01T00:00:00Z', maxParallel: 'many' }).sort()).toEqual(['deadline', 'maxParallel']);
    expect(fields(restoreBody, { snapshotId: 'zz', mode: 'sideways' }).sort()).toEqual(['mode', 'snapshotId', 'workspaceId']);
  });

  it('checks a cutover’s records against each other in the same pass as everything else', () => {
    const records = [
      { name: 'app', type: 'CNAME', content: 'x.example.com' },
      { name: 'app', type: 'A', content: '192.0.2.1' },
    ];
    const problems = problemsOf(cutoverBody, { zoneId: 'not-hex', targetIp: '192.0.2.1', healthUrls: ['https://example.com/healthz'], records });
    expect(problems.map((p) => p.field).sort()).toEqual(['records.1.name', 'zoneId']);
  });

  it('refuses NUL anywhere, naming the field or key, since PostgreSQL stores none', () => {
    expect(problemsOf(updateServerBody, { name: 'a\0b', labels: { k: 'v\0', 'x\0': 'y' } })).toEqual(
      expect.arrayContaining([
        { field: 'name', message: NUL_MESSAGE },
        { field: 'labels.k', message: NUL_MESSAGE },
      ]),
    );
    expect(fields(z.object({ owner: z.string() }), { owner: 'a\0' }, 'query')).toEqual(['owner']);
    expect(check(z.object({ text: z.string() }), { text: 'a\0' }, 'body', true)).toEqual({ data: { text: 'a\0' } });
  });

  it('finds NUL in a deeply nested input without recursion', () => {
    let deep: unknown = 'x\0';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(nulPaths(deep)[0]).toHaveLength(100_000);
  });

  it('says a repeated query parameter was given more than once', () => {
    expect(problemsOf(listServersQuery, { limit: ['1', '2'], status: ['active', 'error'] }, 'query')).toEqual([
      { field: 'status', message: 'given more than once: give it once' },
      { field: 'limit', message: 'given more than once: give it once' },
    ]);
  });

  it('lists at most MAX_PROBLEMS_SHOWN problems, then how many more (a megabyte of unknown keys got megabytes back)', () => {
    const body = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, 1]));
    try {
      parse(z.object({}).strict(), body);
      throw new Error('not thrown');
    } catch (err) {
      const e = err as HttpError;
      expect(e.message.split('; ')).toHaveLength(MAX_PROBLEMS_SHOWN + 1);
      expect(e.message).toMatch(/; and 4900 more$/);
      expect(e.details).toEqual({ fields: expect.any(Array), more: 4900 });
      expect((e.details as { fields: unknown[] }).fields).toHaveLength(MAX_PROBLEMS_SHOWN);
    }
  });

  it('says a body is required when none came', () => {
    expect(problemsOf(updateServerBody, undefined)).toEqual([{ field: 'body', message: 'required: a JSON object (Content-Type: application/json)' }]);
    expect(problemsOf(updateServerBody, ['a'])).toEqual([{ field: 'body', message: expect.stringMatching(/expected object, received array/) }]);
  });

  it('throws a 400 whose message and details name each problem', () => {
    try {
      parse(updateServerBody, { totalMemoryMb: 3_000_000_000, colour: 1 });
      throw new Error('not thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(HttpError);
      const e = err as HttpError;
      expect(e.status).toBe(400);
      expect(e.message).toMatch(/^invalid body: .*totalMemoryMb: Too big.*colour: unknown field/);
      expect(e.details).toEqual({ fields: [expect.objectContaining({ field: 'totalMemoryMb' }), { field: 'colour', message: 'unknown field' }] });
    }
  });
});

describe('clientErrorOf: errors raised before a route', () => {
  const withType = (type: string, extra: object = {}) => Object.assign(new Error('x'), { type, ...extra });
  const req = (headers: Record<string, string> = {}, path = '/servers') => ({ headers, path });

  it.each([
    ['entity.too.large', { status: 413, limit: 1024 * 1024 }, 413, 'payload_too_large', /larger than 1 MiB/],
    ['charset.unsupported', { status: 415, charset: 'latin1' }, 415, 'unsupported_charset', /"latin1"/],
    ['encoding.unsupported', { status: 415, encoding: 'br' }, 415, 'unsupported_encoding', /"br"/],
    ['entity.parse.failed', { status: 400 }, 400, 'invalid_json', /not valid JSON/],
    ['entity.too.deep', { status: 400 }, 400, 'invalid_json', /x/],
    ['request.aborted', { status: 400 }, 400, 'request_aborted', /ended before/],
    ['request.size.invalid', { status: 400 }, 400, 'bad_request', /Content-Length/],
  ])('maps body-parser’s %s to its status and code', (type, extra, status, code, message) => {
    const e = clientErrorOf(withType(type, extra), req())!;
    expect([e.status, e.code]).toEqual([status, code]);
    expect(e.message).toMatch(message);
  });

  it('names a body that is not what its Content-Encoding says', () => {
    let zerr: unknown;
    try {
      zlib.gunzipSync(Buffer.from('{"plain": "text"}'));
    } catch (err) {
      zerr = Object.assign(err as Error, { status: 400 });
    }
    const e = clientErrorOf(zerr, req({ 'content-encoding': 'gzip' }))!;
    expect([e.status, e.code]).toEqual([400, 'bad_encoding']);
    expect(e.message).toMatch(/not valid gzip: incorrect header check/);
  });

  it('respects any 4xx a middleware marks, and names a path that does not decode', () => {
    expect(clientErrorOf(Object.assign(new Error('nope'), { status: 418, expose: true }), req())).toMatchObject({ status: 418, code: 'i_m_a_teapot', message: 'nope' });
    expect(clientErrorOf(Object.assign(new Error('ENOENT: /srv/x'), { status: 404, expose: false }), req({}, '/admin/x'))).toMatchObject({ status: 404, message: 'no such route or file: /admin/x' });
    expect(clientErrorOf(Object.assign(new URIError("Failed to decode param '%E0'"), { status: 400 }), req({}, '/servers/%E0'))).toMatchObject({ status: 400, message: expect.stringMatching(/percent-encoding: \/servers\/%E0/) });
  });

  it('leaves our own faults (no status, or 5xx like stream.encoding.set) to be a 500', () => {
    expect(clientErrorOf(new Error('boom'), req())).toBeUndefined();
    expect(clientErrorOf(withType('stream.encoding.set', { status: 500 }), req())).toBeUndefined();
    expect(clientErrorOf('a string', req())).toBeUndefined();
  });
});

it('rawErrorAnswer writes a complete HTTP answer with a JSON body', () => {
  const a = rawErrorAnswer(404, 'not_found', 'no WebSocket endpoint at /x', { 'x-extra': '1' });
  const [head, body] = a.split('\r\n\r\n');
  expect(head.split('\r\n')[0]).toBe('HTTP/1.1 404 Not Found');
  expect(head).toMatch(/content-type: application\/json/);
  expect(head).toMatch(/x-extra: 1/);
  expect(head).toMatch(new RegExp(`content-length: ${Buffer.byteLength(body)}`));
  expect(JSON.parse(body)).toEqual({ error: 'not_found', message: 'no WebSocket endpoint at /x' });
});
