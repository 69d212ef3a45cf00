import { STATUS_CODES } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { z } from 'zod';

/** An error with an HTTP status and a message safe to show the caller. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    /** Sent with the answer, e.g. Allow on a 405. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, details?: unknown) => new HttpError(400, 'bad_request', message, details);
export const notFound = (what: string) => new HttpError(404, 'not_found', `${what} not found`);
export const conflict = (message: string) => new HttpError(409, 'conflict', message);

/** One bad part of a request: `field` is its full path (`constraints.gpu.count`, `previewPorts.0`), or where it came from. */
export interface FieldProblem {
  field: string;
  message: string;
}

export type Where = 'body' | 'query' | 'params' | 'headers';

/** PostgreSQL refuses U+0000 in text and jsonb: a string holding it would fail the query (a 500), so it is refused here. */
export const NUL_MESSAGE = 'must not contain NUL (\\u0000)';

const fieldName = (path: readonly PropertyKey[], where: Where) => (path.length ? path.map(String).join('.') : where);

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const k of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

interface Step {
  key: PropertyKey;
  up?: Step;
}
const pathOf = (s: Step | undefined): PropertyKey[] => {
  const path: PropertyKey[] = [];
  for (; s; s = s.up) path.push(s.key);
  return path.reverse();
};

/** Paths of every string (value or key) in `input` that holds NUL; iterative and linear, as a body may nest deeply. */
export function nulPaths(input: unknown): PropertyKey[][] {
  const out: PropertyKey[][] = [];
  const todo: [unknown, Step | undefined][] = [[input, undefined]];
  while (todo.length) {
    const [v, at] = todo.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\0')) out.push(pathOf(at));
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) todo.push([v[i], { key: i, up: at }]);
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v).reverse()) {
        if (k.includes('\0')) out.push(pathOf({ key: k, up: at }));
        else todo.push([x, { key: k, up: at }]);
      }
    }
  }
  return out;
}

/**
 * Every problem zod found in `input`, each named by its full path: an unknown key by its own
 * (`constraints.colour: unknown field`), a query parameter given twice as such, a missing body as
 * such. Unless `allowNul`, also every string holding NUL that zod did not already name.
 */
export function fieldProblems(issues: readonly z.core.$ZodIssue[], input: unknown, where: Where, allowNul = false): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) out.push({ field: fieldName([...i.path, k], where), message: 'unknown field' });
      continue;
    }
    const at = valueAt(input, i.path);
    let message = i.message;
    if (where === 'query' && Array.isArray(at) && (i.code === 'invalid_type' || i.code === 'invalid_value')) message = 'given more than once: give it once';
    else if (where === 'body' && i.path.length === 0 && input === undefined) message = 'required: a JSON object (Content-Type: application/json)';
    else if (i.code === 'invalid_key') message = `invalid key: ${i.issues.map((x) => x.message).join('; ')}`;
    out.push({ field: fieldName(i.path, where), message });
  }
  if (!allowNul) {
    const named = new Set(out.map((p) => p.field));
    for (const path of nulPaths(input)) {
      const field = fieldName(path, where);
      if (!named.has(field)) out.push({ field, message: NUL_MESSAGE });
    }
  }
  return out;
}

/** Checks `input` with `schema`: the parsed value, or every problem (see {@link fieldProblems}). */
export function check<S extends z.ZodType>(schema: S, input: unknown, where: Where = 'body', allowNul = false): { data: z.output<S> } | { problems: FieldProblem[] } {
  const r = schema.safeParse(input);
  const problems = r.success ? fieldProblems([], input, where, allowNul) : fieldProblems(r.error.issues, input, where, allowNul);
  return problems.length || !r.success ? { problems } : { data: r.data };
}

/** Problems an answer lists: a body of a megabyte of unknown keys would otherwise get megabytes back. */
export const MAX_PROBLEMS_SHOWN = 100;

/** `field: message; …` for each problem (the first MAX_PROBLEMS_SHOWN, then how many more). */
export function listProblems(problems: FieldProblem[]): string {
  const listed = problems.slice(0, MAX_PROBLEMS_SHOWN).map((f) => `${f.field}: ${f.message}`);
  if (problems.length > MAX_PROBLEMS_SHOWN) listed.push(`and ${problems.length - MAX_PROBLEMS_SHOWN} more`);
  return listed.join('; ');
}

/** Parses `input` with `schema`; a failure is a 400 whose message names every bad field. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, where: Where = 'body'): z.output<S> {
  const r = check(schema, input, where);
  if ('data' in r) return r.data;
  const more = r.problems.length - MAX_PROBLEMS_SHOWN;
  throw badRequest(`invalid ${where}: ${listProblems(r.problems)}`, { fields: r.problems.slice(0, MAX_PROBLEMS_SHOWN), ...(more > 0 ? { more } : {}) });
}

function decodes(path: string): boolean {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
}

const codeOf = (status: number) => (STATUS_CODES[status] ?? 'error').toLowerCase().replace(/[^a-z0-9]+/g, '_');

/**
 * What a request error raised outside our routes means to the caller (body-parser, the router,
 * serve-static, or an HttpError from anywhere): the HttpError to answer with, or undefined for a
 * fault of ours (a 500). Every error such a middleware marks 4xx is the caller's.
 */
export function clientErrorOf(err: unknown, req?: Pick<Request, 'headers' | 'path'>): HttpError | undefined {
  if (err instanceof HttpError) return err;
  // Not `instanceof Error`: zlib's errors may come from another realm.
  if (err === null || typeof err !== 'object' || typeof (err as Error).message !== 'string') return undefined;
  const e = err as Error & { status?: number; statusCode?: number; type?: string; expose?: boolean; limit?: number; charset?: string; encoding?: string; code?: string };
  const status = e.status ?? e.statusCode;
  const encoding = String(req?.headers['content-encoding'] ?? 'identity');
  switch (e.type) {
    case 'entity.too.large':
      return new HttpError(413, 'payload_too_large', `request body is larger than ${e.limit ? `${e.limit / 1024 / 1024} MiB` : 'the limit'}`);
    case 'charset.unsupported':
      return new HttpError(415, 'unsupported_charset', `charset ${JSON.stringify(e.charset ?? '')} is not supported: send JSON as UTF-8 (charset=utf-8, or none)`);
    case 'encoding.unsupported':
      return new HttpError(415, 'unsupported_encoding', `Content-Encoding ${JSON.stringify(e.encoding ?? encoding)} is not supported: send gzip, deflate or identity`, undefined, {
        'Accept-Encoding': 'gzip, deflate',
      });
    case 'entity.parse.failed':
      return new HttpError(400, 'invalid_json', `request body is not valid JSON (an object or an array): ${e.message.slice(0, 200)}`);
    case 'entity.too.deep':
      return new HttpError(400, 'invalid_json', e.message);
    case 'request.aborted':
      return new HttpError(400, 'request_aborted', 'the request body ended before Content-Length was reached');
    case 'request.size.invalid':
      return new HttpError(400, 'bad_request', 'the request body’s length does not match its Content-Length');
  }
  if (status === undefined || status < 400 || status > 499) return undefined;
  // A body that is not what its Content-Encoding says (zlib: Z_DATA_ERROR, Z_BUF_ERROR for a truncated one).
  if (typeof e.code === 'string' && e.code.startsWith('Z_')) return new HttpError(400, 'bad_encoding', `request body is not valid ${encoding}: ${e.message}`);
  // The router (a path parameter) or serve-static could not decode the path.
  if (err instanceof URIError || (status === 400 && req && !decodes(req.path))) return new HttpError(400, 'bad_request', `the path is not valid percent-encoding: ${req?.path ?? ''}`.trim());
  if (status === 404) return new HttpError(404, 'not_found', `no such route or file: ${req?.path ?? ''}`.trim());
  return new HttpError(status, codeOf(status), e.expose ? e.message : (STATUS_CODES[status] ?? 'client error'));
}

/** A whole HTTP answer, for a socket no ServerResponse owns (upgrades, requests Node could not parse); the connection closes after it. */
export function rawAnswer(status: number, headers: Record<string, string | number>, body: string): string {
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Answer'}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${Buffer.byteLength(body)}`, 'connection: close'];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** {@link rawAnswer} with a JSON error body. */
export function rawErrorAnswer(status: number, error: string, message: string, headers: Record<string, string> = {}): string {
  return rawAnswer(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }, JSON.stringify({ error, message }));
}

/** Wraps an async handler so a rejection reaches Express's error middleware. */
export const route =
  (fn: (req: Request, res: Response) => Promise<unknown>) =>
  (req: Request, res: Response, next: NextFunction): void => {
    fn(req, res).catch(next);
  };
