/**
 * GET /servers/available under 1,000 requests/s on loopback, against the real API process
 * (PostgreSQL, Redis rate limiter, JWT auth), with /healthz at the same rate as the
 * baseline of the HTTP stack alone. Last line: {"rps", "p50_ms", "p99_ms", ...}.
 *
 * The API's per-IP limit (100/min) would answer almost every request here with 429, so the
 * limiter is raised for the run; it still counts every request in Redis.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import autocannon from 'autocannon';
import { mintToken } from '../api/auth';
import { createPrisma } from '../lib/prisma';

const RATE = Number(process.env.BENCH_RPS ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const SERVERS = 50;
const PORT = 18000 + Math.floor(Math.random() * 1000);

async function load(url: string, headers: Record<string, string>) {
  const r = await autocannon({ url, headers, connections: Number(process.env.BENCH_CONNECTIONS ?? 16), overallRate: RATE, duration: SECONDS });
  return { rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts };
}

async function main(): Promise<void> {
  const prisma = createPrisma(process.env.DATABASE_URL!, 2);
  await prisma.workspace.deleteMany({ where: { ownerId: 'bench' } });
  await prisma.workspaceServer.deleteMany({ where: { hostname: { startsWith: 'bench-' } } });
  const servers = await Promise.all(
    Array.from({ length: SERVERS }, (_, i) =>
      prisma.workspaceServer.create({
        data: {
          name: `bench-${i}`, hostname: `bench-${i}.local`, ipAddress: `127.0.1.${i + 1}`, status: i % 10 === 9 ? 'unreachable' : 'active',
          totalCpu: 16, totalMemoryMb: 32768, totalDiskGb: 500, region: i % 2 ? 'eu' : 'us', architecture: 'arm64',
        },
      }),
    ),
  );
  // Twenty servers hold five pro workspaces' reservations each.
  for (const s of servers.slice(0, 20)) {
    await prisma.workspaceServer.update({ where: { id: s.id }, data: { reservedCpu: 10, reservedMemoryMb: 5 * 4096, reservedDiskGb: 100 } });
  }

  const api = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'api', 'main.ts')], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, PORT: String(PORT), LOG_LEVEL: 'warn', RATE_LIMIT_PER_MINUTE: '1000000000', RATE_LIMIT_PER_USER_PER_MINUTE: '1000000000', RATE_LIMIT_INTERNAL_PER_MINUTE: '1000000000', NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    const base = `http://127.0.0.1:${PORT}`;
    for (let i = 0; ; i++) {
      const ok = await fetch(`${base}/readyz`).then((r) => r.ok).catch(() => false);
      if (ok) break;
      if (i > 150) throw new Error('API did not become ready');
      await new Promise((r) => setTimeout(r, 200));
    }
    const token = await mintToken(process.env.JWT_SECRET_KEY!, 'bench-user', 'user');
    const headers = { authorization: `Bearer ${token}` };
    const check = await (await fetch(`${base}/servers/available?tier=pro`, { headers })).json();
    console.error(`available servers for pro: ${(check as { servers: unknown[] }).servers.length}`);

    // Warm-up of both paths (JIT, connection pools), then the measured runs.
    await load(`${base}/healthz`, {});
    await load(`${base}/servers/available?tier=pro`, headers);
    const baseline = await load(`${base}/healthz`, {});
    const ours = await load(`${base}/servers/available?tier=pro`, headers);
    console.error(JSON.stringify({ baseline, ours }));
    console.log(
      JSON.stringify({
        rps: ours.rps,
        p50_ms: ours.p50,
        p99_ms: ours.p99,
        non_2xx: ours.non2xx,
        errors: ours.errors,
        target_rps: RATE,
        baseline_healthz_p50_ms: baseline.p50,
        baseline_healthz_p99_ms: baseline.p99,
      }),
    );
  } finally {
    api.kill('SIGTERM');
    await prisma.workspace.deleteMany({ where: { ownerId: 'bench' } });
    await prisma.workspaceServer.deleteMany({ where: { hostname: { startsWith: 'bench-' } } });
    await prisma.$disconnect();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
