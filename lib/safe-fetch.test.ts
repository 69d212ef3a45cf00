import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Outbound, OutboundRefusedError } from './safe-fetch';
import { tripwire } from '../test/tripwire';

describe('Outbound fetch', () => {
  let trap: Awaited<ReturnType<typeof tripwire>>;
  let allowed: http.Server;
  let allowedUrl: string;
  const seen: string[] = [];

  beforeAll(async () => {
    trap = await tripwire();
    allowed = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url === '/redirect') return void res.writeHead(307, { location: `http://127.0.0.1:${trap.port}/v1/chat/completions` }).end();
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        for (let i = 0; i < 20; i++) res.write('x'.repeat(100));
        return void res.end();
      }
      if (req.url === '/slow') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.write('data: {}\n\n');
      }
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => res.writeHead(201, { 'content-type': 'application/json', 'x-seen': req.headers.authorization ?? '' }).end(JSON.stringify({ echo: body })));
    });
    allowed.listen(0, '127.0.0.2');
    await new Promise((r) => allowed.once('listening', r));
    allowedUrl = `http://127.0.0.2:${(allowed.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    allowed.closeAllConnections();
    await new Promise((r) => allowed.close(r));
    await trap.close();
  });

  const refused = async (p: Promise<unknown>, reason: RegExp) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OutboundRefusedError);
    expect((err as OutboundRefusedError).reason).toMatch(reason);
  };

  it('talks to an allowed host as fetch does', async () => {
    const o = new Outbound({ allow: ['127.0.0.2'], totalTimeoutMs: 5_000 });
    const res = await o.fetch(`${allowedUrl}/v1/x`, { method: 'POST', body: '{"a":1}', headers: { authorization: 'Bearer k' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-seen')).toBe('Bearer k');
    expect(await res.json()).toEqual({ echo: '{"a":1}' });
  });

  it('connects only to the addresses it checked: a name that rebinds to loopback after the save is refused at connect time', async () => {
    let calls = 0;
    const o = new Outbound({ allow: [], totalTimeoutMs: 5_000, resolve: async () => (calls++ === 0 ? ['93.184.216.34'] : ['127.0.0.1']) });
    await o.check(`https://rebind.example:${trap.port}`);
    await refused(o.fetch(`https://rebind.example:${trap.port}/v1/chat/completions`, { method: 'POST', body: '{}' }), /loopback/);
    const mixed = new Outbound({ allow: [], totalTimeoutMs: 5_000, resolve: async () => ['93.184.216.34', '::ffff:127.0.0.1'] });
    await refused(mixed.fetch(`https://mixed.example:${trap.port}/`), /loopback/);
    expect(trap.count()).toBe(0);
  });

  it('refuses redirects, even from an allowed host to where the redirect points', async () => {
    const o = new Outbound({ allow: ['127.0.0.2'], totalTimeoutMs: 5_000 });
    await refused(o.fetch(`${allowedUrl}/redirect`, { method: 'POST', body: '{}' }), /redirect/);
    expect(seen).toContain('POST /redirect');
    expect(trap.count()).toBe(0);
  });

  it('caps the answer’s size while it streams, and the whole exchange’s time', async () => {
    const o = new Outbound({ allow: ['127.0.0.2'], totalTimeoutMs: 500, maxResponseBytes: 1_000 });
    const big = await o.fetch(`${allowedUrl}/big`);
    await refused(big.text(), /too large/);
    const slow = await o.fetch(`${allowedUrl}/slow`);
    const t0 = Date.now();
    await expect(slow.text()).rejects.toThrow(/timed out/);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('stops when the caller aborts', async () => {
    const o = new Outbound({ allow: ['127.0.0.2'], totalTimeoutMs: 10_000 });
    const abort = new AbortController();
    const slow = await o.fetch(`${allowedUrl}/slow`, { signal: abort.signal });
    const reading = slow.text();
    abort.abort();
    await expect(reading).rejects.toThrow(/abort/i);
  });
});
