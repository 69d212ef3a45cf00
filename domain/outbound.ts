/**
 * Where a user-supplied URL may send the orchestrator (a user's Ollama): public addresses only,
 * unless the operator allows a host or network. Pure parsing and classification; the connecting
 * is in lib/safe-fetch.ts. Addresses are parsed in every spelling a resolver accepts (inet_aton's
 * octal, hex and short forms, IPv4-mapped IPv6), because a check that reads `0x7f000001` as a
 * name and a resolver that reads it as 127.0.0.1 is the classic way past such a check.
 */

export type Ip = { v: 4; bytes: number[] } | { v: 6; bytes: number[] };

/** An IPv4 address as inet_aton reads it: 1–4 parts, each decimal, octal (leading 0) or hex (0x). */
export function parseIPv4(s: string): Ip | undefined {
  let parts = s.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts = parts.slice(0, -1);
  if (parts.length < 1 || parts.length > 4) return undefined;
  const values: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) n = parseInt(p, 10);
    else return undefined;
    values.push(n);
  }
  const last = values.pop()!;
  if (values.some((v) => v > 255)) return undefined;
  if (last >= 256 ** (4 - values.length)) return undefined;
  const bytes = [...values];
  for (let i = 3 - values.length; i >= 0; i--) bytes.push(Math.floor(last / 256 ** i) % 256);
  return { v: 4, bytes };
}

/** An IPv6 address, with or without brackets, with an optional dotted IPv4 tail; zone ids are refused. */
export function parseIPv6(s: string): Ip | undefined {
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (!s.includes(':') || s.includes('%')) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const items = h.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (i === items.length - 1 && it.includes('.')) {
        if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(it)) return undefined;
        const b = it.split('.').map(Number);
        if (b.some((x) => x > 255)) return undefined;
        out.push(b[0] * 256 + b[1], b[2] * 256 + b[3]);
      } else if (/^[0-9a-f]{1,4}$/i.test(it)) out.push(parseInt(it, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  let all: number[];
  if (halves.length === 2) {
    if (head.length + tail.length > 7) return undefined;
    all = [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    all = head;
  }
  return { v: 6, bytes: all.flatMap((g) => [g >> 8, g & 255]) };
}

/** A literal address in any spelling, or undefined for a name. */
export function parseIp(s: string): Ip | undefined {
  return parseIPv6(s) ?? parseIPv4(s);
}

const v4 = (bytes: number[]): Ip => ({ v: 4, bytes });
const startsWith = (bytes: number[], prefix: number[]) => prefix.every((b, i) => bytes[i] === b);

/** The IPv4 address an IPv6 address stands for when a connection to it reaches IPv4 (mapped, translated, NAT64, 6to4). */
function embeddedV4(ip: Ip): Ip | undefined {
  if (ip.v !== 6) return undefined;
  const b = ip.bytes;
  const zeros = (n: number) => b.slice(0, n).every((x) => x === 0);
  if (zeros(10) && b[10] === 255 && b[11] === 255) return v4(b.slice(12)); // ::ffff:a.b.c.d
  if (zeros(8) && b[8] === 255 && b[9] === 255 && b[10] === 0 && b[11] === 0) return v4(b.slice(12)); // ::ffff:0:a.b.c.d
  if (startsWith(b, [0, 0x64, 0xff, 0x9b]) && b.slice(4, 12).every((x) => x === 0)) return v4(b.slice(12)); // 64:ff9b::/96
  if (b[0] === 0x20 && b[1] === 0x02) return v4(b.slice(2, 6)); // 2002::/16
  return undefined;
}

/** An IPv4-mapped address as the IPv4 address it is; anything else unchanged. */
export function canonicalIp(ip: Ip): Ip {
  if (ip.v === 6 && ip.bytes.slice(0, 10).every((x) => x === 0) && ip.bytes[10] === 255 && ip.bytes[11] === 255) return v4(ip.bytes.slice(12));
  return ip;
}

function inPrefix(ip: Ip, net: Ip, prefix: number): boolean {
  if (ip.v !== net.v) return false;
  for (let bit = 0; bit < prefix; bit++) {
    const i = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if ((ip.bytes[i] & mask) !== (net.bytes[i] & mask)) return false;
  }
  return true;
}

const V4_SPECIAL: [number[], number, string][] = [
  [[0, 0, 0, 0], 8, 'this-network'],
  [[10, 0, 0, 0], 8, 'private'],
  [[100, 64, 0, 0], 10, 'shared (CGNAT)'],
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link-local'],
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 0, 0, 0], 24, 'protocol-assignment'],
  [[192, 0, 2, 0], 24, 'documentation'],
  [[192, 88, 99, 0], 24, 'relay-anycast'],
  [[192, 168, 0, 0], 16, 'private'],
  [[198, 18, 0, 0], 15, 'benchmarking'],
  [[198, 51, 100, 0], 24, 'documentation'],
  [[203, 0, 113, 0], 24, 'documentation'],
  [[224, 0, 0, 0], 4, 'multicast'],
  [[240, 0, 0, 0], 4, 'reserved'],
];

/** Why an address is not a public one (loopback, private, link-local, …), or undefined if it is public. */
export function nonPublicReason(ip: Ip): string | undefined {
  if (ip.v === 4) {
    for (const [net, prefix, why] of V4_SPECIAL) if (inPrefix(ip, v4(net), prefix)) return why;
    return undefined;
  }
  const inner = embeddedV4(ip);
  if (inner) return nonPublicReason(inner);
  const b = ip.bytes;
  if (b.every((x) => x === 0)) return 'unspecified';
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return 'loopback';
  if (b[0] === 0xff) return 'multicast';
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) return 'link-local';
  if ((b[0] & 0xfe) === 0xfc) return 'private';
  // Only global unicast (2000::/3) is public; inside it, the blocks that are not.
  if ((b[0] & 0xe0) !== 0x20) return 'reserved';
  if (startsWith(b, [0x20, 0x01, 0x0d, 0xb8]) || (b[0] === 0x3f && (b[1] & 0xf0) === 0xf0)) return 'documentation';
  if (b[0] === 0x20 && b[1] === 0x01 && (b[2] & 0xfe) === 0) return 'protocol-assignment'; // 2001::/23, Teredo included
  return undefined;
}

export type AllowEntry = { kind: 'host'; name: string } | { kind: 'net'; ip: Ip; prefix: number };

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** A host name as compared: lower case, no trailing dot, no IPv6 brackets. */
export function normalHost(host: string): string {
  return host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

/** One operator allow-list entry: a host name, an address, or a CIDR network; undefined if malformed. */
export function parseAllowEntry(s: string): AllowEntry | undefined {
  const t = s.trim();
  const slash = t.indexOf('/');
  if (slash >= 0) {
    const ip = parseIp(t.slice(0, slash));
    const bits = t.slice(slash + 1);
    if (!ip || !/^\d{1,3}$/.test(bits)) return undefined;
    const c = canonicalIp(ip);
    let prefix = Number(bits);
    if (prefix > (ip.v === 4 ? 32 : 128)) return undefined;
    if (c.v !== ip.v) prefix = Math.max(0, prefix - 96);
    return { kind: 'net', ip: c, prefix };
  }
  const ip = parseIp(t);
  if (ip) {
    const c = canonicalIp(ip);
    return { kind: 'net', ip: c, prefix: c.v === 4 ? 32 : 128 };
  }
  const name = normalHost(t);
  return HOSTNAME.test(name) ? { kind: 'host', name } : undefined;
}

/** The operator's allow list; throws naming the first malformed entry. */
export function parseAllowList(entries: readonly string[]): AllowEntry[] {
  return entries.map((e) => {
    const parsed = parseAllowEntry(e);
    if (!parsed) throw new Error(`not a host name, address or CIDR network: ${e}`);
    return parsed;
  });
}

export function hostAllowed(host: string, allow: readonly AllowEntry[]): boolean {
  const h = normalHost(host);
  return allow.some((a) => a.kind === 'host' && a.name === h);
}

export function addressAllowed(ip: Ip, allow: readonly AllowEntry[]): boolean {
  const c = canonicalIp(ip);
  return allow.some((a) => a.kind === 'net' && inPrefix(c, a.ip, a.prefix));
}

/**
 * Whether a connection for `protocol://host` may go to these addresses (all of them: a name
 * with one private address among public ones is refused). Plain http only where the operator
 * allows the host or every address. Returns the reason for a refusal, or undefined.
 */
export function refusal(protocol: string, host: string, addresses: readonly Ip[], allow: readonly AllowEntry[]): string | undefined {
  if (protocol !== 'https:' && protocol !== 'http:') return 'must be an https URL';
  if (!addresses.length) return 'does not resolve';
  const byName = hostAllowed(host, allow);
  for (const ip of addresses) {
    if (byName || addressAllowed(ip, allow)) continue;
    if (protocol === 'http:') return 'must be an https URL (plain http only to hosts the operator allows)';
    const why = nonPublicReason(ip);
    if (why) return `resolves to a ${why} address`;
  }
  return undefined;
}
