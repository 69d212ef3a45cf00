/**
 * A `fetch` for URLs users give us (a user's Ollama), handed to the openai SDK. The name is
 * resolved here, every address checked (domain/outbound.ts), and the socket connects only to
 * the addresses checked — so a name that answers public at save time and private at request time
 * (DNS rebinding) is caught where it matters. Redirects are refused, not followed; the connect,
 * the whole exchange and the response size are bounded.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import type { LookupAddress, lookup as LookupFn } from 'node:dns';
import { hostAllowed, normalHost, parseAllowList, parseIp, refusal, type AllowEntry, type Ip } from '../domain/outbound';

/** A destination the rules forbid; retrying cannot help. */
export class OutboundRefusedError extends Error {
  override readonly name = 'OutboundRefusedError';
  constructor(readonly reason: string) {
    super(`refused: ${reason}`);
  }
}

/** The connection failed or took too long (a timeout, a reset): like any network failure, worth a retry. */
export class OutboundFailedError extends Error {
  override readonly name = 'OutboundFailedError';
}

export interface OutboundOptions {
  /** Host names, addresses and CIDR networks the operator allows anyway (and the only ones plain http may reach). */
  allow: readonly string[];
  connectTimeoutMs?: number;
  /** From the request to the last byte of the answer (streams included). */
  totalTimeoutMs: number;
  maxResponseBytes?: number;
  /** How names resolve (tests swap it to play a rebinding resolver). */
  resolve?: (host: string) => Promise<string[]>;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

const systemResolve = async (host: string) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

export class Outbound {
  private readonly allow: AllowEntry[];
  private readonly connectTimeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly resolve: (host: string) => Promise<string[]>;

  constructor(private readonly o: OutboundOptions) {
    this.allow = parseAllowList(o.allow);
    this.connectTimeoutMs = o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.maxResponseBytes = o.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.resolve = o.resolve ?? systemResolve;
  }

  /** What can be judged without resolving: scheme, credentials in the URL, a literal address. */
  precheck(raw: string | URL): URL {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new OutboundRefusedError('not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new OutboundRefusedError('must be an https URL');
    if (url.username || url.password) throw new OutboundRefusedError('must not carry credentials');
    const literal = parseIp(normalHost(url.hostname));
    if (literal) this.judge(url, [literal]);
    else if (url.protocol === 'http:' && !this.allow.some((a) => a.kind === 'net') && !hostAllowed(url.hostname, this.allow)) {
      throw new OutboundRefusedError('must be an https URL (plain http only to hosts the operator allows)');
    }
    return url;
  }

  /** The whole check, resolving the name as a connection would (at save time). */
  async check(raw: string): Promise<void> {
    const url = this.precheck(raw);
    if (parseIp(normalHost(url.hostname))) return;
    try {
      await this.addresses(url);
    } catch (err) {
      throw err instanceof OutboundFailedError ? new OutboundRefusedError('does not resolve') : err;
    }
  }

  private judge(url: URL, ips: Ip[]): void {
    const why = refusal(url.protocol, url.hostname, ips, this.allow);
    if (why) throw new OutboundRefusedError(why);
  }

  /** Every address the name has, all of them checked; only these are connected to. */
  private async addresses(url: URL): Promise<LookupAddress[]> {
    let found: string[];
    try {
      found = await this.resolve(normalHost(url.hostname));
    } catch {
      // At connect time a failed lookup may pass (a resolver hiccup); saving refuses it (check()).
      throw new OutboundFailedError('provider name does not resolve');
    }
    const parsed = found.map((a) => ({ a, ip: parseIp(a) }));
    if (parsed.some((p) => !p.ip)) throw new OutboundRefusedError('does not resolve');
    this.judge(
      url,
      parsed.map((p) => p.ip!),
    );
    return parsed.map((p) => ({ address: p.a, family: p.ip!.v }));
  }

  /** A WHATWG-shaped `fetch` (what the openai SDK calls) over node:http with the checks above. */
  readonly fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    if (typeof input !== 'string' && !(input instanceof URL)) throw new TypeError('only URL inputs are supported');
    const url = this.precheck(input);
    const signal = init.signal ?? undefined;
    if (signal?.aborted) throw signal.reason ?? new DOMException('aborted', 'AbortError');
    const body = bodyBytes(init.body);
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    // Node's http client does not decompress; ask for what we can read.
    headers['accept-encoding'] = 'identity';
    if (body) headers['content-length'] = String(body.length);
    const secure = url.protocol === 'https:';
    const lookup = (_host: string, opts: { all?: boolean }, cb: (err: Error | null, address: string | LookupAddress[], family?: number) => void) => {
      this.addresses(url).then(
        (list) => (opts.all ? cb(null, list) : cb(null, list[0].address, list[0].family)),
        (err: Error) => cb(err, ''),
      );
    };

    return new Promise<Response>((resolve, reject) => {
      let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
      let finished = false;
      const timers: NodeJS.Timeout[] = [];
      const done = () => {
        finished = true;
        timers.forEach(clearTimeout);
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (err: Error) => {
        if (finished) return;
        done();
        req.destroy();
        // Node's own socket errors are named ours, so callers can tell a network failure from a bug.
        const known = err instanceof OutboundRefusedError || err instanceof OutboundFailedError || (err as { name?: string }).name === 'AbortError';
        const e = known ? err : new OutboundFailedError(`provider connection failed (${(err as NodeJS.ErrnoException).code ?? err.message})`);
        if (controller) controller.error(e);
        else reject(e);
      };
      const onAbort = () => fail(signal?.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
      signal?.addEventListener('abort', onAbort, { once: true });

      const req = (secure ? https : http).request({
        protocol: url.protocol,
        hostname: normalHost(url.hostname),
        ...(secure && !parseIp(normalHost(url.hostname)) ? { servername: normalHost(url.hostname) } : {}),
        port: url.port || (secure ? 443 : 80),
        path: `${url.pathname}${url.search}`,
        method: init.method ?? 'GET',
        headers,
        agent: false,
        lookup: lookup as unknown as typeof LookupFn,
      });
      timers.push(setTimeout(() => fail(new OutboundFailedError('provider connection timed out')), this.connectTimeoutMs));
      timers.push(setTimeout(() => fail(new OutboundFailedError('provider request timed out')), this.o.totalTimeoutMs));
      req.on('socket', (s) => s.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(timers[0])));
      req.on('error', (err) => fail(err));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) return fail(new OutboundRefusedError('redirects are not followed'));
        if (status < 200 || status > 599) return fail(new OutboundRefusedError(`answered with status ${status}`));
        if (Number(res.headers['content-length'] ?? 0) > this.maxResponseBytes) return fail(new OutboundRefusedError('answer too large'));
        const h = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          try {
            h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
          } catch {
            // a header the WHATWG rules refuse is dropped, as fetch would
          }
        }
        let received = 0;
        const stream = new ReadableStream<Uint8Array>({
          start: (c) => {
            controller = c;
            res.on('data', (chunk: Buffer) => {
              if (finished) return;
              received += chunk.length;
              if (received > this.maxResponseBytes) return fail(new OutboundRefusedError('answer too large'));
              c.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
              if ((c.desiredSize ?? 1) <= 0) res.pause();
            });
            res.on('end', () => {
              if (finished) return;
              done();
              c.close();
            });
            res.on('error', (err) => fail(err));
            res.on('close', () => fail(new OutboundFailedError('provider connection closed early')));
          },
          pull: () => void res.resume(),
          cancel: () => {
            done();
            req.destroy();
          },
        });
        const empty = status === 204 || status === 205;
        if (empty) res.resume();
        resolve(new Response(empty ? null : stream, { status, statusText: res.statusMessage, headers: h }));
      });
      req.end(body);
    });
  };
}

function bodyBytes(body: RequestInit['body']): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString());
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('unsupported request body');
}
