import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { config } from '../lib/config';
import { startHarness, type Harness } from './harness';
import { localEngines, uniq } from './helpers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? (fs.existsSync('/usr/lib/chromium/chromium') ? '/usr/lib/chromium/chromium' : '/usr/bin/chromium');
const ARTEFACTS = path.join(__dirname, '..', '.stack', 'artifacts');

/**
 * A loopback TCP relay in front of the API, so the test can make the API unreachable for the
 * page (connections refused) and reachable again on the same origin.
 */
async function relay(to: string) {
  const target = new URL(to);
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = async () => {
    server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  };
  await listen();
  return {
    url: () => `http://127.0.0.1:${port}`,
    async stop() {
      const closed = new Promise((r) => server!.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
    start: listen,
  };
}

/**
 * The console against an API whose rate limit is 5 requests per 2-second window per address and
 * per user: each window stands for a minute of the default 100 per minute, so a minute here is
 * half an hour of polling there. The old page (three requests every second while a drain ran)
 * was refused within the first window and then stopped for good without saying so.
 */
describe('the console keeps following a long drain within the rate limit, and says when it cannot', () => {
  const LIMIT = 5;
  const WINDOW_S = 2;
  let h: Harness;
  let browser: Browser;
  let page: Page;
  let front: Awaited<ReturnType<typeof relay>>;
  const suite = uniq('console-poll');
  let serverId = '';
  let workspaceId = '';
  /** The API's answers to the page, in order (the console's static files are not counted by the limiter). */
  const answers: { path: string; status: number }[] = [];
  const internal = { 'x-internal-api-key': config().INTERNAL_API_KEY };
  const asInternal = (method: string, p: string, body?: unknown) => h.call(method, p, { token: null, headers: internal, body });

  beforeAll(async () => {
    fs.mkdirSync(ARTEFACTS, { recursive: true });
    h = await startHarness('console-poll', { rateLimitPerMinute: LIMIT, rateLimitPerPrincipal: LIMIT, rateLimitWindowSeconds: WINDOW_S });
    front = await relay(h.url);
    const e = localEngines()[0];
    // A server with one stopped workspace and a paused drain: the drain runs (and is polled) until cancelled.
    const s = await h.deps.prisma.workspaceServer.create({
      data: { name: 'poll-engine', hostname: `${suite}.local`, ipAddress: e.host, dockerPort: e.port, status: 'active', totalCpu: 8, totalMemoryMb: 16384, totalDiskGb: 100, labels: { suite } },
    });
    serverId = s.id;
    const w = await h.deps.prisma.workspace.create({ data: { ownerId: 'test-user', name: 'poll-ws', tier: 'free', status: 'stopped', serverId, constraints: { labels: { suite } } } });
    workspaceId = w.id;
    const drain = await asInternal('POST', `/servers/${serverId}/drain`, { deadline: new Date(Date.now() + 2 * 3600_000).toISOString(), maxParallel: 1, onDeadline: 'abort', paused: true });
    expect(drain.status).toBe(202);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(30_000);
    page.on('response', (r) => {
      const u = new URL(r.url());
      if (u.origin === front.url() && !u.pathname.startsWith('/admin/')) answers.push({ path: u.pathname, status: r.status() });
    });
    await page.goto(`${front.url()}/admin/#/signin`);
    await page.getByLabel('Admin token or internal API key').fill(h.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Servers' }).waitFor();
  });

  afterAll(async () => {
    await browser?.close();
    await front?.stop().catch(() => undefined);
    await h.deps.prisma.workspace.deleteMany({ where: { id: workspaceId } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: serverId } });
    await h.close();
  });

  const freshness = () => page.locator('#freshness');
  const drainRounds = () => answers.filter((a) => a.path === `/servers/${serverId}/drain`).length;

  it('follows the drain for many rate-limit windows without one refusal, and shows what changed late in it', async () => {
    await page.goto(`${front.url()}/admin/#/servers/${serverId}`);
    await page.locator('#drain').getByText('paused by an operator').waitFor();
    await page.locator('#freshness[data-state="live"]').waitFor();
    const firstRound = drainRounds();
    const firstShown = await freshness().locator('.when').textContent();

    // Fifteen more rounds: about twenty windows, each one a minute of the default budget.
    const rounds = 15;
    const deadline = Date.now() + 120_000;
    while (drainRounds() < firstRound + rounds && Date.now() < deadline) await page.waitForTimeout(500);
    expect(drainRounds()).toBeGreaterThanOrEqual(firstRound + rounds);

    // Something changes on the server late in the drain: the page still shows it.
    expect((await asInternal('PATCH', `/servers/${serverId}`, { name: 'poll-engine-renamed' })).status).toBe(200);
    await page.locator('#live h1', { hasText: 'poll-engine-renamed' }).waitFor();

    expect(answers.filter((a) => a.status === 429)).toEqual([]);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(await freshness().getAttribute('data-state')).toBe('live');
    expect(await freshness().locator('.when').textContent()).not.toBe(firstShown);
    await page.screenshot({ path: path.join(ARTEFACTS, 'console-drain-polling.png'), fullPage: true });
  }, 180_000);

  it('says it is not updating while the API refuses it (429), and picks up again once it may', async () => {
    // Someone else spends the operator's budget (another tab, a script with the same token).
    let spending = true;
    const spender = (async () => {
      while (spending) {
        await h.call('GET', '/servers');
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await page.locator('#freshness[data-state="stale"]', { hasText: /Not updating: the API's rate limit is used up \(HTTP 429: 5 requests per 2 s/ }).waitFor({ timeout: 30_000 });
      expect(await page.locator('main.stale #drain').count()).toBe(1);
      await page.screenshot({ path: path.join(ARTEFACTS, 'console-drain-rate-limited.png'), fullPage: true });
    } finally {
      spending = false;
      await spender;
    }
    await page.locator('#freshness[data-state="live"]').waitFor({ timeout: 30_000 });
  }, 60_000);

  it('says it is not updating while the API is unreachable, and follows the drain again when it is back', async () => {
    await front.stop();
    try {
      await page.locator('#freshness[data-state="stale"]', { hasText: /Not updating: the API did not answer/ }).waitFor({ timeout: 30_000 });
      await page.locator('#freshness .when', { hasText: /Last updated .*; trying again in \d+ s/ }).waitFor();
      await page.screenshot({ path: path.join(ARTEFACTS, 'console-drain-unreachable.png'), fullPage: true });
    } finally {
      await front.start();
    }
    await page.locator('#freshness[data-state="live"]').waitFor({ timeout: 60_000 });
    // It follows the drain to its end.
    expect((await asInternal('POST', `/servers/${serverId}/drain/cancel`)).status).toBe(202);
    await page.locator('#drain .status', { hasText: 'cancelled' }).waitFor({ timeout: 60_000 });
  }, 120_000);
});
