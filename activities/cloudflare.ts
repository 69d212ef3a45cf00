import { ApplicationFailure, Context } from '@temporalio/activity';
import Cloudflare from 'cloudflare';
import { fqdn, reconcile, type DnsRecord } from '../domain/cutover';
import type { Logger } from '../lib/logger';

export interface CloudflareSettings {
  /** From CLOUDFLARE_API_TOKEN; never in a workflow payload or a log line. */
  apiToken?: string;
  baseURL?: string;
}

export interface CloudflareDeps {
  cloudflare: CloudflareSettings;
  logger: Logger;
}

export interface ZoneAccess {
  zoneName: string;
  /** A TXT record was created and deleted: the token may edit this zone's DNS. */
  canEdit: boolean;
}

const PROBE_NAME = '_podex-cutover-preflight';

/**
 * Cloudflare's answer as a Temporal failure: a 4xx (bad input, no permission) will not get
 * better by retrying and stops at once with Cloudflare's own messages; 429, 5xx and
 * connection errors are retried by the activity's policy.
 */
function asFailure(err: unknown, what: string): unknown {
  if (!(err instanceof Cloudflare.APIError)) return err;
  const errors = (err.errors ?? []).map((e) => `${e.code}: ${e.message}`).join('; ');
  const message = `Cloudflare ${what}: ${err.status ?? 'no response'}${errors ? ` (${errors})` : ` ${err.message}`}`;
  if (err.status && err.status >= 400 && err.status < 500 && err.status !== 429 && err.status !== 408) {
    return ApplicationFailure.nonRetryable(message, err.status === 403 || err.status === 401 ? 'CloudflareForbidden' : 'CloudflareRejected');
  }
  return ApplicationFailure.retryable(message, 'CloudflareUnavailable');
}

async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asFailure(err, what);
  }
}

const toRecord = (r: { id: string; name: string; type: string; content?: string; proxied?: boolean; ttl: number }): DnsRecord => ({
  id: r.id,
  name: r.name,
  type: r.type,
  content: r.content ?? '',
  proxied: Boolean(r.proxied),
  ttl: r.ttl,
});

/** DNS through the official `cloudflare` SDK. The SDK does not retry: Temporal does, visibly in the history. */
export function createCloudflareActivities({ cloudflare, logger }: CloudflareDeps) {
  const log = logger.child({ component: 'cloudflare' });
  let client: Cloudflare | undefined;
  const cf = () => {
    if (!cloudflare.apiToken) throw ApplicationFailure.nonRetryable('CLOUDFLARE_API_TOKEN is not set', 'CloudflareForbidden');
    client ??= new Cloudflare({ apiToken: cloudflare.apiToken, baseURL: cloudflare.baseURL, maxRetries: 0, timeout: 30_000 });
    return client;
  };

  async function recordsAt(zoneId: string, name: string): Promise<DnsRecord[]> {
    const out: DnsRecord[] = [];
    for await (const r of cf().dns.records.list({ zone_id: zoneId, name: { exact: name }, per_page: 100 })) out.push(toRecord(r as Parameters<typeof toRecord>[0]));
    return out;
  }

  async function apply(zoneId: string, name: string, wanted: Omit<DnsRecord, 'id'>[]): Promise<number> {
    const current = await call(`listing ${name}`, () => recordsAt(zoneId, name));
    const actions = reconcile(current, wanted);
    for (const a of actions) {
      Context.current().heartbeat({ name, op: a.op });
      if (a.op === 'delete') await call(`deleting a record of ${name}`, () => cf().dns.records.delete(a.id, { zone_id: zoneId }));
      else {
        const body = { name: a.record.name, type: a.record.type as 'A', content: a.record.content, proxied: a.record.proxied, ttl: a.record.ttl };
        if (a.op === 'update') await call(`updating ${name} ${a.record.type}`, () => cf().dns.records.edit(a.id, { zone_id: zoneId, ...body }));
        else await call(`creating ${name} ${a.record.type}`, () => cf().dns.records.create({ zone_id: zoneId, ...body }));
      }
      log.info({ zoneId, name, op: a.op, type: a.op === 'delete' ? undefined : a.record.type }, 'dns record changed');
    }
    return actions.length;
  }

  return {
    /** The token is active, the zone exists, and a throw-away TXT record can be made and removed in it. */
    async cloudflareZoneAccess(zoneId: string): Promise<ZoneAccess> {
      await call('verifying the token', () => cf().user.tokens.verify());
      const zone = await call('reading the zone', () => cf().zones.get({ zone_id: zoneId }));
      const name = fqdn(PROBE_NAME, zone.name);
      for (const r of await call('listing the probe record', () => recordsAt(zoneId, name))) {
        await call('removing an old probe record', () => cf().dns.records.delete(r.id, { zone_id: zoneId }));
      }
      const made = await call('creating a probe TXT record', () =>
        cf().dns.records.create({ zone_id: zoneId, name, type: 'TXT', content: '"podex cutover pre-flight"', ttl: 60 }),
      );
      await call('deleting the probe TXT record', () => cf().dns.records.delete(made.id, { zone_id: zoneId }));
      return { zoneName: zone.name, canEdit: true };
    },

    /** The records at each name, as they are now: what a rollback brings back. */
    async captureRecords(zoneId: string, names: string[]): Promise<Record<string, DnsRecord[]>> {
      const out: Record<string, DnsRecord[]> = {};
      for (const name of names) out[name] = (await call(`listing ${name}`, () => recordsAt(zoneId, name))).filter((r) => ['A', 'AAAA', 'CNAME'].includes(r.type));
      return out;
    },

    /** Makes the address records at `name` exactly `wanted` (idempotent: a re-run changes nothing); returns how many changes it made. */
    async setRecordsAt(zoneId: string, name: string, wanted: Omit<DnsRecord, 'id'>[]): Promise<number> {
      return apply(zoneId, name, wanted);
    },
  };
}
