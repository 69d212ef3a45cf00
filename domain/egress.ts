/**
 * Workspace egress, read back from a server's filter table (`iptables -S`): does every new
 * connection from a workspace network to the metadata service, a private address or the host
 * itself meet a DROP? The rules are walked as the kernel would for one such packet; whatever
 * this reader cannot decide counts as "might let it through". No I/O.
 */
import type { DaemonFinding } from './servers';

/** The cloud metadata service and the rest of link-local (read, never dialled). */
export const METADATA_PROBES = ['169.254.169.254', '169.254.0.1'] as const;
/** Both ends of each private and CGNAT range: a rule for part of a range does not pass. */
export const PRIVATE_PROBES = ['10.0.0.1', '10.255.255.254', '172.16.0.1', '172.31.255.254', '192.168.0.1', '192.168.255.254', '100.64.0.1', '100.127.255.254'] as const;

export interface FilterTable {
  policies: Map<string, string>;
  chains: Map<string, string[][]>;
}

/** `iptables -S` of the filter table, as policies and each chain's rules (arguments after the chain name). */
export function parseFilterRules(text: string): FilterTable {
  const policies = new Map<string, string>();
  const chains = new Map<string, string[][]>();
  for (const line of text.split('\n')) {
    const t = line.trim().split(/\s+/);
    if (t[0] === '-P' && t.length >= 3) policies.set(t[1]!, t[2]!);
    else if (t[0] === '-N' && t[1]) chains.set(t[1], chains.get(t[1]) ?? []);
    else if (t[0] === '-A' && t[1]) chains.set(t[1], [...(chains.get(t[1]) ?? []), t.slice(2)]);
  }
  return { policies, chains };
}

type Cidr = { base: number; bits: number };
const ip = (s: string): number | null => {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const o = m.slice(1).map(Number);
  return o.some((x) => x > 255) ? null : ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
};
export const parseCidr = (s: string): Cidr | null => {
  const [a, b = '32'] = s.split('/');
  const base = ip(a ?? '');
  const bits = Number(b);
  if (base === null || !Number.isInteger(bits) || bits < 0 || bits > 32) return null;
  return { base: bits === 0 ? 0 : (base & (~0 << (32 - bits))) >>> 0, bits };
};
const mask = (bits: number) => (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0);
const contains = (outer: Cidr, inner: Cidr) => outer.bits <= inner.bits && ((inner.base & mask(outer.bits)) >>> 0) === outer.base;
const overlaps = (a: Cidr, b: Cidr) => contains(a, b) || contains(b, a);
const ifaceMatches = (pattern: string, name: string) => (pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern);

/** One packet as the rules see it. `dst: null` is "one of the host's own addresses", not known here. */
export interface Probe {
  src: Cidr;
  dst: Cidr | null;
  proto: 'tcp';
  dport: number;
  state: 'NEW' | 'ESTABLISHED';
  inIface: string;
}

type Tri = 'yes' | 'no' | 'maybe';
type Outcome = 'drop' | 'accept' | 'return';

function matches(args: readonly string[], p: Probe): Tri {
  let result: Tri = 'yes';
  const and = (t: Tri) => {
    if (t === 'no' || result === 'no') result = 'no';
    else if (t === 'maybe') result = 'maybe';
  };
  for (let i = 0; i < args.length; i++) {
    let a = args[i]!;
    let neg = false;
    if (a === '!') {
      neg = true;
      a = args[++i] ?? '';
    }
    if (a === '-j' || a === '-g') break;
    const v = args[i + 1] ?? '';
    let t: Tri;
    if (a === '-m') {
      i++;
      continue;
    } else if (a === '-s' || a === '-d') {
      i++;
      const c = parseCidr(v);
      const side = a === '-s' ? p.src : p.dst;
      if (!c) t = 'maybe';
      else if (side === null) t = c.bits === 0 ? 'yes' : 'maybe';
      else t = contains(c, side) ? 'yes' : overlaps(c, side) ? 'maybe' : 'no';
    } else if (a === '-p') {
      i++;
      t = v === 'all' || v === p.proto ? 'yes' : 'no';
    } else if (a === '--dport') {
      i++;
      t = Number(v) === p.dport ? 'yes' : 'no';
    } else if (a === '-i') {
      i++;
      t = ifaceMatches(v, p.inIface) ? 'yes' : 'no';
    } else if (a === '--ctstate' || a === '--state') {
      i++;
      t = v.split(',').includes(p.state) ? 'yes' : 'no';
    } else if (a === '--physdev-is-bridged') {
      // A workspace leaving its network is routed, never bridged.
      t = 'no';
    } else {
      // -o and anything else this reader does not model: it may or may not match.
      if (v && !v.startsWith('-') && v !== '!') i++;
      t = 'maybe';
    }
    and(neg && t !== 'maybe' ? (t === 'yes' ? 'no' : 'yes') : t);
  }
  return result;
}

const target = (args: readonly string[]) => {
  const j = args.findIndex((a) => a === '-j' || a === '-g');
  return j >= 0 ? args[j + 1] : undefined;
};

/** Every way the packet can leave `chain` (a built-in chain ends in its policy). */
function walk(table: FilterTable, chain: string, p: Probe, from = 0, depth = 0): Set<Outcome> {
  const rules = table.chains.get(chain) ?? [];
  for (let i = from; i < rules.length; i++) {
    const m = matches(rules[i]!, p);
    if (m === 'no') continue;
    const tgt = target(rules[i]!);
    let here: Set<Outcome>;
    let jump = false;
    if (tgt === 'DROP' || tgt === 'REJECT') here = new Set(['drop']);
    else if (tgt === 'ACCEPT') here = new Set(['accept']);
    else if (tgt === 'RETURN') here = new Set(['return']);
    else if (tgt && table.chains.has(tgt) && depth < 16) {
      here = walk(table, tgt, p, 0, depth + 1);
      jump = true;
    } else continue; // LOG and other non-terminal targets
    const ends = new Set(here);
    // A rule that may not match, or a chain that may hand the packet back, leaves the rest in play.
    let rest = m === 'maybe';
    if (jump && ends.delete('return')) rest = true;
    if (rest) for (const o of walk(table, chain, p, i + 1, depth)) ends.add(o);
    return ends;
  }
  const policy = table.policies.get(chain);
  if (!policy) return new Set(['return']);
  return new Set([policy === 'DROP' ? 'drop' : 'accept']);
}

/** True when every path through `chain` drops the packet. */
export function certainlyDropped(table: FilterTable, chain: string, p: Probe): boolean {
  const ends = walk(table, chain, p);
  return ends.size === 1 && ends.has('drop');
}

/** A workspace network to check: its subnet and the bridge its traffic comes in on. */
export interface WorkspaceNet {
  subnet: string;
  bridge: string;
}

/** The audit's egress findings for the networks given (one at least: a new network shows where new ones come from). */
export function egressFindings(rulesText: string, nets: readonly WorkspaceNet[]): DaemonFinding[] {
  const table = parseFilterRules(rulesText);
  const srcs = nets.map((n) => ({ n, src: parseCidr(n.subnet) })).filter((x): x is { n: WorkspaceNet; src: Cidr } => x.src !== null);
  const forward = (dsts: readonly string[], port: number) => {
    const open: string[] = [];
    for (const { n, src } of srcs) {
      for (const d of dsts) {
        const probe: Probe = { src, dst: parseCidr(d), proto: 'tcp', dport: port, state: 'NEW', inIface: n.bridge };
        if (!certainlyDropped(table, 'FORWARD', probe)) open.push(`${n.subnet} → ${d}:${port}`);
      }
    }
    return open;
  };
  const summary = (open: string[], what: string) =>
    srcs.length === 0
      ? { ok: false, detail: 'no workspace network to check' }
      : open.length === 0
        ? { ok: true, detail: `${what} dropped for ${srcs.length} network(s)` }
        : { ok: false, detail: `not dropped: ${open.slice(0, 5).join(', ')}${open.length > 5 ? ` and ${open.length - 5} more` : ''}` };

  const hostOpen: string[] = [];
  for (const { n, src } of srcs) {
    const probe: Probe = { src, dst: null, proto: 'tcp', dport: 22, state: 'NEW', inIface: n.bridge };
    if (!certainlyDropped(table, 'INPUT', probe)) hostOpen.push(`${n.subnet} → host`);
    // Replies to what the host opened (the proxy's connections to published ports) must pass.
    if (certainlyDropped(table, 'INPUT', { ...probe, state: 'ESTABLISHED' })) hostOpen.push(`${n.subnet} → host replies dropped too`);
  }
  return [
    { check: 'egress: metadata service blocked', required: true, ...summary(forward(METADATA_PROBES, 80), 'new connections to 169.254.0.0/16') },
    { check: 'egress: private network blocked', required: true, ...summary(forward(PRIVATE_PROBES, 22), 'new connections to private ranges') },
    { check: 'egress: host blocked', required: true, ...summary(hostOpen, 'new connections to the host') },
  ];
}
