import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** The proxies whose forwarding headers are believed: IP addresses or CIDRs (TRUSTED_PROXIES). */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(entries: string[]) {
    for (const entry of entries) {
      const [address, bits] = entry.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(address, family);
      else this.list.addSubnet(address, Number(bits), family);
    }
    this.empty = entries.length === 0;
  }

  trusts(address: string | undefined): boolean {
    if (this.empty || !address) return false;
    const a = plain(address);
    const family = isIP(a);
    return family !== 0 && this.list.check(a, family === 6 ? 'ipv6' : 'ipv4');
  }
}

/** An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d; lists name it a.b.c.d. */
function plain(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The client's address. The peer's own address unless the peer is a trusted proxy; then
 * Cloudflare's CF-Connecting-IP if it sent one, else the nearest X-Forwarded-For hop that is
 * not itself a trusted proxy. A header from any other peer is the client's own words and ignored.
 */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies): string {
  const peer = plain(req.socket.remoteAddress ?? '');
  if (!trusted.trusts(peer)) return peer;
  const cf = req.headers['cf-connecting-ip'];
  if (typeof cf === 'string' && isIP(cf.trim())) return plain(cf.trim());
  const hops = String(req.headers['x-forwarded-for'] ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!isIP(hops[i])) break;
    client = plain(hops[i]);
    if (!trusted.trusts(client)) break;
  }
  return client;
}
