import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { eventually, registerEngines, startHarness, type Harness } from './harness';
import { localEngines, uniq } from './helpers';

// Debian's /usr/bin/chromium is a wrapper script; the browser itself is under /usr/lib.
const CHROMIUM = process.env.CHROMIUM_PATH ?? (fs.existsSync('/usr/lib/chromium/chromium') ? '/usr/lib/chromium/chromium' : '/usr/bin/chromium');
/** Screenshots kept as test artefacts (CI uploads the folder). */
const ARTEFACTS = path.join(__dirname, '..', '.stack', 'artifacts');

describe('the fleet console in a real browser (Chromium) against the real stack', () => {
  let h: Harness;
  let browser: Browser;
  let page: Page;
  const suite = uniq('console');
  const servers: string[] = [];
  const workspaces: string[] = [];

  beforeAll(async () => {
    fs.mkdirSync(ARTEFACTS, { recursive: true });
    h = await startHarness('console', { migrationHoldHealthyMs: 1_000 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(30_000);
    await page.goto(`${h.url}/admin/#/signin`);
    await page.getByLabel('Admin token or internal API key').fill(h.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Servers' }).waitFor();
  });

  afterAll(async () => {
    await browser?.close();
    for (const id of workspaces) await h.call('DELETE', `/workspaces/${id}`);
    await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    await h.close();
  });

  it('adds a local engine as a server, showing the API’s validation first, and sees it turn active', async () => {
    const e = localEngines()[0];
    await page.getByRole('link', { name: 'Add server' }).click();
    await page.getByLabel('Name', { exact: true }).fill('console-engine-1');
    await page.getByLabel('Hostname').fill(`${uniq('console')}.local`);
    await page.getByRole('button', { name: 'Add and onboard' }).click();
    // The API's own message, naming the field.
    await page.getByRole('alert').filter({ hasText: 'ipAddress' }).waitFor();

    await page.getByLabel('IP address').fill(e.host);
    await page.getByLabel('Docker API port').fill(String(e.port));
    await page.getByLabel('Labels (key=value, comma separated)').fill(`suite=${suite}`);
    await page.getByRole('button', { name: 'Add and onboard' }).click();
    await page.waitForURL(/#\/servers\/[0-9a-f-]{36}$/);
    const id = page.url().split('/').pop()!;
    servers.push(id);
    await page.locator('#live h1 .status-active').waitFor({ timeout: 60_000 });
    await page.locator('#live a', { hasText: 'Temporal UI' }).waitFor();
    expect(await page.locator('#live a', { hasText: 'Temporal UI' }).getAttribute('href')).toContain(`/workflows/onboard-server-${id}`);

    // Edit its capacity and labels, then cordon and uncordon it, from the keyboard-usable form and buttons.
    // The form shows what onboarding read from the engine, not the empty record it started from.
    const memory = (await h.call('GET', `/servers/${id}`)).body.total.memoryMb as number;
    expect(memory).toBeGreaterThan(0);
    await eventually(async () => Number(await page.getByLabel('Total memory (MB)').inputValue()) === memory, 10_000);
    await page.getByLabel('Total CPU (cores)').fill('16');
    await page.getByLabel('Labels (key=value, comma separated)').fill(`suite=${suite}, tier=gold`);
    await page.getByRole('button', { name: 'Save' }).click();
    await eventually(async () => {
      const s = (await h.call('GET', `/servers/${id}`)).body;
      return s.total.cpu === 16 && s.labels.tier === 'gold' && s.total.memoryMb === memory;
    }, 10_000);
    await page.getByRole('button', { name: 'Cordon' }).click();
    await page.getByRole('button', { name: 'Uncordon' }).waitFor();
    expect((await h.call('GET', `/servers/${id}`)).body.cordoned).toBe(true);
    await page.getByRole('button', { name: 'Uncordon' }).click();
    await page.getByRole('button', { name: 'Cordon' }).waitFor();
    expect((await h.call('GET', `/servers/${id}`)).body.cordoned).toBe(false);

    await page.getByRole('link', { name: 'Servers', exact: true }).click();
    const row = page.locator(`tr[data-server="${id}"]`);
    await row.waitFor();
    expect(await row.locator('.status').first().textContent()).toBe('active');
    expect(await row.getByRole('img', { name: /^CPU:/ }).count()).toBe(1);
    await page.screenshot({ path: path.join(ARTEFACTS, 'console-servers.png'), fullPage: true });
  }, 120_000);

  it('creates a workspace on a chosen server, offered with its free capacity', async () => {
    const [target] = await registerEngines(h, 'console2', [1], { suite });
    servers.push(target);
    await page.getByRole('link', { name: 'New workspace' }).click();
    await page.getByLabel('Name', { exact: true }).fill('console-ws');
    const option = page.locator(`select[name=server] option[value="${target}"]`);
    await option.waitFor({ state: 'attached' });
    expect(await option.textContent()).toMatch(/free/);
    expect(await page.locator('select[name=server] option').first().textContent()).toBe('Auto (recommended)');
    await page.getByLabel('Server').selectOption(target);
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(new RegExp(`#/servers/${target}$`), { timeout: 120_000 });
    await page.locator('#live li', { hasText: 'console-ws' }).locator('.status-running').waitFor();
    const ws = (await h.call('GET', '/workspaces?limit=500')).body.workspaces.find((w: { name: string; serverId: string }) => w.name === 'console-ws' && w.serverId === target);
    expect(ws).toBeDefined();
    workspaces.push(ws.id);
    // The server's page shows where the workspace is opened.
    expect(await page.locator('#live li', { hasText: 'console-ws' }).locator('a.ws-url').textContent()).toBe(ws.url);
    // Keep its migrations among this suite's servers (other suites run beside this one).
    await h.deps.prisma.workspace.update({ where: { id: ws.id }, data: { constraints: { labels: { suite } } } });
  }, 180_000);

  it('drains the server from its page, follows progress to done, and removes the drained server', async () => {
    const [source] = servers.slice(-1);
    await page.goto(`${h.url}/admin/#/servers/${source}`);
    await page.getByRole('button', { name: 'Start drain' }).click();
    // The workflow's own view first, so a slow or blocked drain says why.
    let last: unknown;
    await eventually(async () => {
      const d = await h.call('GET', `/servers/${source}/drain`);
      last = { status: d.status, body: d.body, formError: await page.locator('#drain-err').textContent() };
      return d.body?.workflowStatus === 'COMPLETED';
    }, 200_000, 500).catch((err: Error) => {
      throw new Error(`${err.message}; last seen: ${JSON.stringify(last)}`);
    });
    await page.locator('#drain').getByText('1 of 1 moved').waitFor({ timeout: 30_000 });
    await page.locator('#drain a', { hasText: 'Temporal UI' }).waitFor();
    await page.screenshot({ path: path.join(ARTEFACTS, 'console-drain.png'), fullPage: true });
    await page.locator('#live h1 .status-drained').waitFor({ timeout: 60_000 });
    // A drained server offers no second drain.
    await page.getByRole('button', { name: 'Start drain' }).waitFor({ state: 'hidden' });
    const moved = await eventually(async () => (await h.call('GET', `/workspaces/${workspaces[0]}`)).body, 10_000);
    expect(moved).toMatchObject({ serverId: servers[0], status: 'running' });
    await page.getByRole('button', { name: 'Remove server' }).click();
    await page.getByRole('heading', { name: 'Servers' }).waitFor();
    expect((await h.call('GET', `/servers/${source}`)).status).toBe(404);
    servers.pop();
  }, 300_000);
});
