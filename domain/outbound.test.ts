import { nonPublicReason, parseAllowList, parseIp, parseIPv4, parseIPv6, refusal, type Ip } from './outbound';

const ip = (s: string): Ip => {
  const p = parseIp(s);
  if (!p) throw new Error(`not an address: ${s}`);
  return p;
};
const dotted = (s: string) => parseIPv4(s)?.bytes.join('.');

describe('address parsing', () => {
  it('reads IPv4 in every spelling inet_aton accepts', () => {
    for (const s of ['127.0.0.1', '0177.0.0.1', '0x7f.0.0.1', '0x7f000001', '2130706433', '017700000001', '127.1', '127.0.1', '0x7f.1', '127.0.0.1.', '0177.0x0.00.01']) {
      expect([s, dotted(s)]).toEqual([s, '127.0.0.1']);
    }
    expect(dotted('169.254.169.254')).toBe('169.254.169.254');
    expect(dotted('0xa9fea9fe')).toBe('169.254.169.254');
    expect(dotted('0')).toBe('0.0.0.0');
    for (const s of ['256.0.0.1', '1.2.3.4.5', '08.0.0.1', '0x1g.0.0.1', '4294967296', '1.2.65536', '', 'localhost', '1..2.3', 'a.b.c.d']) expect([s, parseIPv4(s)]).toEqual([s, undefined]);
  });

  it('reads IPv6 with compression, brackets and IPv4 tails, and refuses zone ids', () => {
    expect(parseIPv6('::1')!.bytes).toEqual([...Array(15).fill(0), 1]);
    expect(parseIPv6('[::ffff:127.0.0.1]')!.bytes.slice(10)).toEqual([255, 255, 127, 0, 0, 1]);
    expect(parseIPv6('::ffff:7f00:1')!.bytes).toEqual(parseIPv6('::ffff:127.0.0.1')!.bytes);
    expect(parseIPv6('2001:db8:0:0:0:0:0:1')!.bytes).toEqual(parseIPv6('2001:db8::1')!.bytes);
    for (const s of ['fe80::1%eth0', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', '::ffff:300.0.0.1', ':::', '1:2:3:4:5:6:7']) expect([s, parseIPv6(s)]).toEqual([s, undefined]);
  });
});

describe('public or not', () => {
  it('refuses loopback, private, link-local, CGNAT, multicast and reserved IPv4, however spelled', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['0x7f000001', 'loopback'],
      ['0177.1', 'loopback'],
      ['0.0.0.0', 'this-network'],
      ['10.1.2.3', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.1.1', 'private'],
      ['169.254.169.254', 'link-local'],
      ['100.64.0.1', 'shared (CGNAT)'],
      ['100.127.255.254', 'shared (CGNAT)'],
      ['224.0.0.251', 'multicast'],
      ['255.255.255.255', 'reserved'],
      ['198.18.0.1', 'benchmarking'],
    ];
    for (const [s, why] of cases) expect([s, nonPublicReason(ip(s))]).toEqual([s, why]);
    for (const s of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '172.15.255.255', '11.0.0.1']) expect([s, nonPublicReason(ip(s))]).toEqual([s, undefined]);
  });

  it('refuses IPv6 loopback, link-local, unique-local, multicast, and IPv4 non-public addresses inside mapped, NAT64 and 6to4 forms', () => {
    const cases: [string, string][] = [
      ['::1', 'loopback'],
      ['::', 'unspecified'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'],
      ['::ffff:0:127.0.0.1', 'loopback'],
      ['::ffff:169.254.169.254', 'link-local'],
      ['64:ff9b::10.0.0.1', 'private'],
      ['2002:7f00:1::', 'loopback'],
      ['fe80::1', 'link-local'],
      ['fd00::1', 'private'],
      ['fc00::1', 'private'],
      ['ff02::1', 'multicast'],
      ['::127.0.0.1', 'reserved'],
      ['2001:db8::1', 'documentation'],
      ['2001::1', 'protocol-assignment'],
      ['100::1', 'reserved'],
    ];
    for (const [s, why] of cases) expect([s, nonPublicReason(ip(s))]).toEqual([s, why]);
    for (const s of ['2606:4700:4700::1111', '2a00:1450:4001::1', '::ffff:8.8.8.8', '64:ff9b::808:808']) expect([s, nonPublicReason(ip(s))]).toEqual([s, undefined]);
  });
});

describe('refusal', () => {
  const allow = parseAllowList(['ollama.internal', '127.0.0.2', '10.5.0.0/16', '::ffff:192.168.7.0/120']);

  it('asks for https to public addresses only, checking every address a name has', () => {
    expect(refusal('https:', 'api.example.com', [ip('8.8.8.8')], [])).toBeUndefined();
    expect(refusal('https:', 'api.example.com', [ip('8.8.8.8'), ip('127.0.0.1')], [])).toBe('resolves to a loopback address');
    expect(refusal('http:', 'api.example.com', [ip('8.8.8.8')], [])).toMatch(/https/);
    expect(refusal('ftp:', 'api.example.com', [ip('8.8.8.8')], [])).toMatch(/https/);
    expect(refusal('https:', 'api.example.com', [], [])).toBe('does not resolve');
  });

  it('lets the operator allow hosts and networks, with plain http to those only', () => {
    expect(refusal('http:', 'ollama.internal', [ip('10.9.9.9')], allow)).toBeUndefined();
    expect(refusal('http:', 'OLLAMA.internal.', [ip('10.9.9.9')], allow)).toBeUndefined();
    expect(refusal('http:', '127.0.0.2', [ip('127.0.0.2')], allow)).toBeUndefined();
    expect(refusal('http:', '127.0.0.1', [ip('127.0.0.1')], allow)).toMatch(/https/);
    expect(refusal('https:', '127.0.0.1', [ip('127.0.0.1')], allow)).toBe('resolves to a loopback address');
    expect(refusal('http:', 'gpu.lan', [ip('10.5.3.4')], allow)).toBeUndefined();
    expect(refusal('http:', 'gpu.lan', [ip('10.5.3.4'), ip('10.6.0.1')], allow)).toMatch(/https/);
    expect(refusal('https:', 'gpu.lan', [ip('10.5.3.4'), ip('10.6.0.1')], allow)).toBe('resolves to a private address');
    // A mapped address matches the IPv4 network it stands for, and a mapped network its IPv4 addresses.
    expect(refusal('http:', 'x', [ip('::ffff:10.5.0.1')], allow)).toBeUndefined();
    expect(refusal('http:', 'x', [ip('192.168.7.9')], allow)).toBeUndefined();
    expect(refusal('http:', 'x', [ip('192.168.8.9')], allow)).toMatch(/https/);
  });

  it('refuses malformed allow-list entries by name', () => {
    expect(() => parseAllowList(['10.0.0.0/33'])).toThrow(/10.0.0.0\/33/);
    expect(() => parseAllowList(['http://x'])).toThrow(/http:\/\/x/);
    expect(() => parseAllowList(['-bad-.example'])).toThrow();
  });
});
