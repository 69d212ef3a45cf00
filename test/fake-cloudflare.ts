/**
 * A local server implementing the subset of Cloudflare's API v4 the orchestrator calls, as
 * Cloudflare answers it: the `{success, errors, messages, result, result_info}` envelope,
 * page/per_page pagination, Bearer-token auth (400 for a malformed header, 403 for an unknown
 * token or one without the DNS edit permission), DNS validation errors and the A/AAAA/CNAME
 * name conflict. The real `cloudflare` SDK is pointed at it. Faults can be injected per route.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIPv4, isIPv6 } from 'node:net';

export interface FakeRecord {
  id: string;
  zone_id: string;
  zone_name: string;
  name: string;
  type: string;
  content: string;
  proxiable: boolean;
  proxied: boolean;
  ttl: number;
  comment: string | null;
  tags: string[];
  meta: Record<string, unknown>;
  created_on: string;
  modified_on: string;
}

interface Fault {
  method: string;
  path: RegExp;
  status: number;
  times: number;
  errors?: { code: number; message: string }[];
}

const cfId = () => randomBytes(16).toString('hex');
const TYPES = new Set(['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'NS']);
const ADDRESS_TYPES = new Set(['A', 'AAAA', 'CNAME']);

export class FakeCloudflare {
  readonly zones = new Map<string, { id: string; name: string; status: string }>();
  readonly records = new Map<string, FakeRecord>();
  /** token → may it edit DNS? */
  readonly tokens = new Map<string, { edit: boolean }>();
  readonly requests: { method: string; path: string; status: number }[] = [];
  private faults: Fault[] = [];
  private server?: http.Server;
  url = '';

  addZone(name: string): string {
    const id = cfId();
    this.zones.set(id, { id, name, status: 'active' });
    return id;
  }

  addToken(token: string, edit = true): void {
    this.tokens.set(token, { edit });
  }

  /** The next `times` requests matching method and path answer `status` (with Cloudflare's envelope). */
  fail(method: string, path: RegExp, status: number, times = 1, errors?: { code: number; message: string }[]): void {
    this.faults.push({ method, path, status, times, errors });
  }

  clearFaults(): void {
    this.faults = [];
  }

  seed(zoneId: string, r: { name: string; type: string; content: string; proxied?: boolean; ttl?: number }): FakeRecord {
    const zone = this.zones.get(zoneId)!;
    const now = new Date().toISOString();
    const rec: FakeRecord = {
      id: cfId(),
      zone_id: zoneId,
      zone_name: zone.name,
      name: this.fqdn(r.name, zone.name),
      type: r.type,
      content: r.content,
      proxiable: ADDRESS_TYPES.has(r.type),
      proxied: r.proxied ?? false,
      ttl: r.proxied ? 1 : (r.ttl ?? 1),
      comment: null,
      tags: [],
      meta: {},
      created_on: now,
      modified_on: now,
    };
    this.records.set(rec.id, rec);
    return rec;
  }

  /** The zone's records, sorted for comparison (without ids and timestamps). */
  snapshot(zoneId: string) {
    return [...this.records.values()]
      .filter((r) => r.zone_id === zoneId)
      .map(({ name, type, content, proxied, ttl }) => ({ name, type, content, proxied, ttl }))
      .sort((a, b) => `${a.name} ${a.type} ${a.content}`.localeCompare(`${b.name} ${b.type} ${b.content}`));
  }

  private fqdn(name: string, zone: string): string {
    if (name === '@' || name === zone) return zone;
    return name.endsWith(`.${zone}`) ? name : `${name}.${zone}`;
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const out = this.handle(req.method ?? 'GET', new URL(req.url ?? '/', 'http://x'), req.headers.authorization, body);
        this.requests.push({ method: req.method ?? 'GET', path: (req.url ?? '').split('?')[0], status: out.status });
        res.writeHead(out.status, { 'content-type': 'application/json', 'cf-ray': `${randomBytes(8).toString('hex')}-TST` });
        res.end(JSON.stringify(out.body));
      });
    });
    this.server.listen(0, '127.0.0.1');
    await new Promise((r) => this.server!.once('listening', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/client/v4`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  private handle(method: string, url: URL, auth: string | undefined, raw: string): { status: number; body: unknown } {
    const ok = (result: unknown, status = 200, result_info?: unknown) => ({ status, body: { success: true, errors: [], messages: [], result, ...(result_info ? { result_info } : {}) } });
    const fail = (status: number, errors: { code: number; message: string; error_chain?: unknown[] }[]) => ({ status, body: { success: false, errors, messages: [], result: null } });
    const path = url.pathname.replace(/^\/client\/v4/, '');

    const fault = this.faults.find((f) => f.method === method && f.path.test(path) && f.times > 0);
    if (fault) {
      fault.times--;
      return fail(fault.status, fault.errors ?? [{ code: 10000 + fault.status, message: http.STATUS_CODES[fault.status] ?? 'error' }]);
    }

    const m = /^Bearer (\S+)$/.exec(auth ?? '');
    if (!m) return fail(400, [{ code: 6003, message: 'Invalid request headers', error_chain: [{ code: 6111, message: 'Invalid format for Authorization header' }] }]);
    const token = this.tokens.get(m[1]);
    if (!token) return fail(403, [{ code: 9109, message: 'Invalid access token' }]);

    if (method === 'GET' && path === '/user/tokens/verify') return ok({ id: cfId(), status: 'active' });

    let zm = /^\/zones\/([0-9a-f]{32})$/.exec(path);
    if (zm && method === 'GET') {
      const zone = this.zones.get(zm[1]);
      return zone ? ok(zone) : fail(404, [{ code: 7003, message: `Could not route to /zones/${zm[1]}, perhaps your object identifier is invalid?` }]);
    }
    zm = /^\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(path);
    if (!zm) return fail(404, [{ code: 7003, message: `Could not route to ${path}, perhaps your object identifier is invalid?` }]);
    const zone = this.zones.get(zm[1]);
    if (!zone) return fail(404, [{ code: 7003, message: `Could not route to ${path}, perhaps your object identifier is invalid?` }]);
    const recordId = zm[2];

    if (method === 'GET' && !recordId) {
      const page = Math.max(1, Number(url.searchParams.get('page') ?? 1));
      const perPage = Math.min(5000, Math.max(5, Number(url.searchParams.get('per_page') ?? 100)));
      const name = url.searchParams.get('name.exact') ?? url.searchParams.get('name[exact]') ?? url.searchParams.get('name');
      const type = url.searchParams.get('type');
      const all = [...this.records.values()]
        .filter((r) => r.zone_id === zone.id && (!name || r.name === this.fqdn(name, zone.name)) && (!type || r.type === type))
        .sort((a, b) => a.created_on.localeCompare(b.created_on) || a.id.localeCompare(b.id));
      const slice = all.slice((page - 1) * perPage, page * perPage);
      return ok(slice, 200, { page, per_page: perPage, count: slice.length, total_count: all.length, total_pages: Math.max(1, Math.ceil(all.length / perPage)) });
    }
    if (method === 'GET') {
      const r = this.records.get(recordId);
      return r && r.zone_id === zone.id ? ok(r) : fail(404, [{ code: 81044, message: 'Record does not exist.' }]);
    }
    if (!token.edit) return fail(403, [{ code: 10000, message: 'Authentication error' }]);

    let input: Partial<FakeRecord>;
    try {
      input = raw ? (JSON.parse(raw) as Partial<FakeRecord>) : {};
    } catch {
      return fail(400, [{ code: 6007, message: 'Malformed JSON in request body' }]);
    }
    const validate = (r: Partial<FakeRecord>, existing?: FakeRecord) => {
      const errs: { code: number; message: string }[] = [];
      if (!r.type || !TYPES.has(r.type)) errs.push({ code: 9020, message: 'Invalid DNS record type' });
      if (!r.name || !/^(\*\.)?([a-z0-9_-]+\.)*[a-z0-9_-]+$|^@$|^\*$/i.test(r.name)) errs.push({ code: 9000, message: 'DNS name is invalid.' });
      if (r.type === 'A' && !isIPv4(r.content ?? '')) errs.push({ code: 9005, message: 'Content for A record must be a valid IPv4 address.' });
      if (r.type === 'AAAA' && !isIPv6(r.content ?? '')) errs.push({ code: 9006, message: 'Content for AAAA record must be a valid IPv6 address.' });
      if (r.type === 'CNAME' && !/^([a-z0-9-]+\.)+[a-z0-9-]+$|^@$/i.test(r.content ?? '')) errs.push({ code: 9007, message: 'Content for CNAME record is invalid.' });
      if (r.ttl !== undefined && r.ttl !== 1 && (r.ttl < 30 || r.ttl > 86400)) errs.push({ code: 9021, message: 'Invalid TTL. Must be between 30 and 86400 seconds, or 1 for Automatic.' });
      if (r.proxied && !ADDRESS_TYPES.has(r.type ?? '')) errs.push({ code: 9004, message: 'This record type cannot be proxied.' });
      if (errs.length) return fail(400, [{ code: 1004, message: 'DNS Validation Error', error_chain: errs }]);
      const name = this.fqdn(r.name!, zone.name);
      const sameName = [...this.records.values()].filter((x) => x.zone_id === zone.id && x.name === name && x.id !== existing?.id);
      if (ADDRESS_TYPES.has(r.type!) && sameName.some((x) => ADDRESS_TYPES.has(x.type) && (x.type === 'CNAME' || r.type === 'CNAME'))) {
        return fail(400, [{ code: 81053, message: 'An A, AAAA, or CNAME record with that host already exists.' }]);
      }
      if (sameName.some((x) => x.type === r.type && x.content === r.content)) return fail(400, [{ code: 81058, message: 'An identical record already exists.' }]);
      return undefined;
    };
    const store = (r: Partial<FakeRecord>, existing?: FakeRecord): FakeRecord => {
      const now = new Date().toISOString();
      const rec: FakeRecord = {
        id: existing?.id ?? cfId(),
        zone_id: zone.id,
        zone_name: zone.name,
        name: this.fqdn(r.name!, zone.name),
        type: r.type!,
        content: r.type === 'CNAME' ? this.fqdn(r.content!, zone.name) : r.content!,
        proxiable: ADDRESS_TYPES.has(r.type!),
        proxied: Boolean(r.proxied),
        ttl: r.proxied ? 1 : (r.ttl ?? 1),
        comment: r.comment ?? existing?.comment ?? null,
        tags: r.tags ?? existing?.tags ?? [],
        meta: {},
        created_on: existing?.created_on ?? now,
        modified_on: now,
      };
      this.records.set(rec.id, rec);
      return rec;
    };

    if (method === 'POST' && !recordId) {
      const bad = validate(input);
      return bad ?? ok(store(input));
    }
    const existing = recordId ? this.records.get(recordId) : undefined;
    if (!existing || existing.zone_id !== zone.id) return fail(404, [{ code: 81044, message: 'Record does not exist.' }]);
    if (method === 'DELETE') {
      this.records.delete(existing.id);
      return ok({ id: existing.id });
    }
    if (method === 'PATCH' || method === 'PUT') {
      const merged = method === 'PATCH' ? { ...existing, ...input, name: input.name ?? existing.name } : input;
      const bad = validate(merged, existing);
      return bad ?? ok(store(merged, existing));
    }
    return fail(405, [{ code: 10405, message: 'Method not allowed' }]);
  }
}
