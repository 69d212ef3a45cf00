import { config } from '../lib/config';
import { createPrisma } from '../lib/prisma';
import { uniq } from './helpers';

describe('PostgreSQL through Prisma', () => {
  const prisma = createPrisma(config().DATABASE_URL, 2);
  const hostnames: string[] = [];

  afterAll(async () => {
    await prisma.workspace.deleteMany({ where: { server: { hostname: { in: hostnames } } } });
    await prisma.workspaceServer.deleteMany({ where: { hostname: { in: hostnames } } });
    await prisma.$disconnect();
  });

  it('round-trips a server with INET and JSONB columns and the seed defaults', async () => {
    const hostname = `${uniq('ws')}.test`;
    hostnames.push(hostname);
    const labels = { region: 'eu-central', tier: ['free', 'pro'], gpu: false, weight: 1.5 };
    const created = await prisma.workspaceServer.create({
      data: { name: 'ws-test', hostname, ipAddress: '2001:db8::17', totalCpu: 16, totalMemoryMb: 32768, totalDiskGb: 500, labels },
    });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.sshPort).toBe(22);
    expect(created.dockerPort).toBe(2376);
    expect(created.dockerRuntime).toBe('runsc');
    expect(created.architecture).toBe('arm64');
    expect(created.status).toBe('active');

    const read = await prisma.workspaceServer.findUniqueOrThrow({ where: { hostname } });
    expect(read.ipAddress).toBe('2001:db8::17');
    expect(read.labels).toEqual(labels);

    // The columns really are INET and JSONB: PostgreSQL's own operators work on them.
    const [row] = await prisma.$queryRaw<{ ip_type: string; labels_type: string; in_net: boolean; region: string }[]>`
      SELECT pg_typeof(ip_address)::text AS ip_type, pg_typeof(labels)::text AS labels_type,
             ip_address << inet '2001:db8::/32' AS in_net, labels->>'region' AS region
      FROM workspace_servers WHERE hostname = ${hostname}`;
    expect(row).toEqual({ ip_type: 'inet', labels_type: 'jsonb', in_net: true, region: 'eu-central' });

    // JSONB containment filter through Prisma.
    const found = await prisma.workspaceServer.findMany({ where: { labels: { path: ['region'], equals: 'eu-central' }, hostname } });
    expect(found.map((s) => s.id)).toEqual([created.id]);
  });

  it('rejects what the schema forbids: a malformed INET and a duplicate hostname', async () => {
    const hostname = `${uniq('ws')}.test`;
    hostnames.push(hostname);
    const data = { name: 'ws', hostname, ipAddress: '127.0.0.1', totalCpu: 1, totalMemoryMb: 1, totalDiskGb: 1 };
    await prisma.workspaceServer.create({ data });
    await expect(prisma.workspaceServer.create({ data })).rejects.toMatchObject({ code: 'P2002' });
    await expect(
      prisma.workspaceServer.create({ data: { ...data, hostname: `x${hostname}`, ipAddress: 'not-an-ip' } }),
    ).rejects.toThrow(/inet/i);
  });

  it('links a workspace to its server through the foreign key', async () => {
    const hostname = `${uniq('ws')}.test`;
    hostnames.push(hostname);
    const server = await prisma.workspaceServer.create({
      data: { name: 'ws', hostname, ipAddress: '127.0.0.1', totalCpu: 4, totalMemoryMb: 8192, totalDiskGb: 100 },
    });
    const ws = await prisma.workspace.create({
      data: { ownerId: 'user-1', name: 'demo', tier: 'free', serverId: server.id, assignedCpu: 0.5, assignedMemoryMb: 512 },
    });
    const withServer = await prisma.workspace.findUniqueOrThrow({ where: { id: ws.id }, include: { server: true } });
    expect(withServer.server?.hostname).toBe(hostname);
    await expect(prisma.workspace.create({ data: { ownerId: 'u', name: 'x', tier: 'free', serverId: '00000000-0000-0000-0000-000000000000' } })).rejects.toMatchObject({ code: 'P2003' });
  });
});
