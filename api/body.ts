/**
 * How the API reads a request body: JSON in UTF-8, plain or gzip/deflate, at most 1 MiB, nested
 * at most MAX_JSON_DEPTH deep. Each refusal is the caller's error (api/errors.ts clientErrorOf).
 */
import type { NextFunction, Request, Response } from 'express';
import express from 'express';
import { HttpError } from './errors';

export const BODY_LIMIT_BYTES = 1024 * 1024;
/**
 * Deeper JSON overflows the stack of whatever walks it next (JSON.stringify for a provider or a
 * workflow payload: a 500); no request of ours nests near this.
 */
export const MAX_JSON_DEPTH = 64;
/**
 * Content codings a body may come in. A fixed list, not whatever this Node's zlib has (zstd
 * comes and goes with the Node version), so the API's contract does not change with it.
 */
export const BODY_ENCODINGS = ['identity', 'gzip', 'deflate'];

/** How deep `json` (a JSON text) nests, counting `[` and `{` outside strings; stops counting past `max`. */
export function jsonDepth(json: Buffer | string, max = Infinity): number {
  const s = typeof json === 'string' ? json : json.toString('utf8');
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest && (deepest = depth) > max) return deepest;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

function refuseDeep(_req: Request, _res: Response, buf: Buffer): void {
  if (jsonDepth(buf, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw Object.assign(new Error(`request body nests deeper than ${MAX_JSON_DEPTH} levels`), { status: 400, type: 'entity.too.deep' });
  }
}

/** The charset parameter of a Content-Type, lower-case; undefined when there is none. */
export function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*("([^"]*)"|[^;\s]*)/i.exec(contentType ?? '');
  return m ? (m[2] ?? m[1]).toLowerCase() : undefined;
}

/**
 * Why a JSON body cannot be read, before any of it is: its coding or charset is not one we take
 * (JSON is UTF-8, RFC 8259; body-parser alone would also take UTF-16 and -32).
 */
export function unreadableBody(headers: { 'content-type'?: string; 'content-encoding'?: string }): HttpError | undefined {
  const coding = (headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (!BODY_ENCODINGS.includes(coding)) {
    return new HttpError(415, 'unsupported_encoding', `Content-Encoding ${JSON.stringify(coding)} is not supported: send gzip, deflate or identity`, undefined, { 'Accept-Encoding': 'gzip, deflate' });
  }
  const charset = charsetOf(headers['content-type']);
  if (charset !== undefined && charset !== 'utf-8') {
    return new HttpError(415, 'unsupported_charset', `charset ${JSON.stringify(charset)} is not supported: send JSON as UTF-8 (charset=utf-8, or none)`);
  }
  return undefined;
}

/** The API's JSON body parser (see the file's comment); other content types leave req.body undefined. */
export function jsonBody() {
  const parser = express.json({ limit: BODY_LIMIT_BYTES, strict: true, verify: refuseDeep });
  return (req: Request, res: Response, next: NextFunction): void => {
    const refused = req.is('application/json') ? unreadableBody(req.headers) : undefined;
    if (!refused) return parser(req, res, next);
    // Not read: the connection closes after the answer instead of draining an upload no one wants.
    res.setHeader('Connection', 'close');
    next(refused);
  };
}
