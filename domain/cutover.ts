/**
 * The GCP → self-hosted cutover as data: the DNS records plan (seed Phase 8), its defaults,
 * and how the records at a name are brought to a wanted state. No I/O, no Node built-ins:
 * the cutover workflow uses these functions too.
 */

export type RecordType = 'A' | 'AAAA' | 'CNAME';
export const RECORD_TYPES: readonly RecordType[] = ['A', 'AAAA', 'CNAME'];

/** One record as the plan wants it. `name` is relative to the zone (`@` is the apex, `*` the wildcard) or a full name in it. */
export interface RecordSpec {
  name: string;
  type: RecordType;
  content: string;
  proxied: boolean;
  /** Seconds; 1 is Cloudflare's "automatic" (always so for proxied records). */
  ttl: number;
}

/** A record as Cloudflare holds it (the fields a restore must bring back). */
export interface DnsRecord {
  id: string;
  name: string;
  type: string;
  content: string;
  proxied: boolean;
  ttl: number;
}

/**
 * The seed's Phase 8 table. Its `ws-*` row becomes the wildcard `*`: Cloudflare wildcards
 * must be a whole leftmost label, so `ws-{id}.zone` is served by `*.zone`; the named records
 * still win over it.
 */
export function defaultRecords(targetIp: string, zoneName: string): RecordSpec[] {
  const a = (name: string, proxied = true): RecordSpec => ({ name, type: 'A', content: targetIp, proxied, ttl: 1 });
  return [a('@'), { name: 'www', type: 'CNAME', content: zoneName, proxied: true, ttl: 1 }, a('app'), a('api'), a('*'), a('coolify', false)];
}

/** GCP resources to remove once the rollback window has passed (seed Task 10.4 and the stack the seed leaves). */
export const DEFAULT_DECOMMISSION = [
  'GKE / Cloud Run services of the platform (api, agent, web, compute)',
  'Cloud SQL PostgreSQL instance (after a final export is kept)',
  'Memorystore Redis instance',
  'GCS buckets of workspace data (after a final copy is verified)',
  'Vertex AI endpoints and quotas',
  'Load balancers, static IPs and Cloud DNS zones',
  'Service accounts and keys; GCP credentials in CI',
  'The billing account budget alerts for the old project',
];

export const fqdn = (name: string, zone: string): string => (name === '@' || name === zone ? zone : name.endsWith(`.${zone}`) ? name : `${name}.${zone}`);

const ADDRESS = new Set(['A', 'AAAA', 'CNAME']);

export type RecordAction =
  | { op: 'create'; record: Omit<DnsRecord, 'id'> }
  | { op: 'update'; id: string; record: Omit<DnsRecord, 'id'> }
  | { op: 'delete'; id: string };

const same = (r: Omit<DnsRecord, 'id'>, w: Omit<DnsRecord, 'id'>) =>
  r.type === w.type && r.content === w.content && r.proxied === w.proxied && (r.ttl === w.ttl || (r.proxied && w.proxied));

/**
 * What turns the address records (A, AAAA, CNAME) at one name into exactly `wanted`: records
 * already right are kept, one of the same type is updated in place, the rest are removed
 * (deletes first: a CNAME may not share its name with an A). Other types (TXT, MX) are left
 * alone. Running it again on its own result gives no actions.
 */
export function reconcile(current: DnsRecord[], wanted: Omit<DnsRecord, 'id'>[]): RecordAction[] {
  const left = current.filter((r) => ADDRESS.has(r.type));
  const todo = [...wanted];
  // Exact matches stay.
  for (const w of [...todo]) {
    const i = left.findIndex((r) => same(r, w));
    if (i >= 0) {
      left.splice(i, 1);
      todo.splice(todo.indexOf(w), 1);
    }
  }
  const updates: RecordAction[] = [];
  for (const w of [...todo]) {
    const i = left.findIndex((r) => r.type === w.type);
    if (i >= 0) {
      updates.push({ op: 'update', id: left[i].id, record: w });
      left.splice(i, 1);
      todo.splice(todo.indexOf(w), 1);
    }
  }
  return [...left.map((r) => ({ op: 'delete' as const, id: r.id })), ...updates, ...todo.map((record) => ({ op: 'create' as const, record }))];
}

/** The wanted state of a spec in Cloudflare's terms (full name; proxied records have automatic TTL). */
export function wantedRecord(spec: RecordSpec, zone: string): Omit<DnsRecord, 'id'> {
  return { name: fqdn(spec.name, zone), type: spec.type, content: spec.type === 'CNAME' ? fqdn(spec.content, zone) : spec.content, proxied: spec.proxied, ttl: spec.proxied ? 1 : spec.ttl };
}

/** Problems with a plan's records that Cloudflare would refuse or that contradict each other, by field. */
export function planProblems(records: RecordSpec[], zone: string): { field: string; message: string }[] {
  const out: { field: string; message: string }[] = [];
  const seen = new Map<string, RecordSpec[]>();
  records.forEach((r, i) => {
    if (/\*/.test(r.name) && r.name !== '*' && !r.name.startsWith('*.')) {
      out.push({ field: `records.${i}.name`, message: `${r.name}: a wildcard must be a whole leftmost label ("*" or "*.sub"), as Cloudflare requires` });
    }
    const name = fqdn(r.name, zone);
    if (!name.endsWith(zone)) out.push({ field: `records.${i}.name`, message: `${r.name} is not in zone ${zone}` });
    const list = seen.get(name) ?? [];
    if (list.some((o) => o.type === 'CNAME' || r.type === 'CNAME')) out.push({ field: `records.${i}.name`, message: `${name}: a CNAME may not share its name with another record` });
    list.push(r);
    seen.set(name, list);
  });
  return out;
}
