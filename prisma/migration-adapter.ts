/**
 * The driver adapter Prisma's JS schema engine uses for migrations (prisma.config.ts).
 *
 * Two upstream problems are worked around here, both in @prisma/adapter-pg 6.19:
 *  - it cannot map PostgreSQL's `"char"` (oid 18) and `name` (oid 19) columns, which the
 *    schema engine reads from the catalogs while introspecting (prisma/orm#27403); those
 *    values arrive as text anyway, so they are reported as `text` (oid 25);
 *  - its shadow-database handling lets the connection string override the shadow
 *    database's name and drops the database while its own pool still holds connections.
 *    We connect with discrete fields and close the pool before `DROP ... WITH (FORCE)`.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';

const TEXT_OID = 25;
const CATALOG_OIDS = new Set([18, 19]);

type ConnectionFields = Pick<pg.PoolConfig, 'host' | 'port' | 'user' | 'password' | 'database'>;

export function connectionFields(url: string): ConnectionFields {
  const u = new URL(url);
  return {
    host: decodeURIComponent(u.hostname),
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres',
  };
}

function asText(res: pg.QueryResult | undefined): pg.QueryResult | undefined {
  for (const f of res?.fields ?? []) if (CATALOG_OIDS.has(f.dataTypeID)) f.dataTypeID = TEXT_OID;
  return res;
}

type AnyQuery = (...args: unknown[]) => unknown;

function catalogSafePool(fields: ConnectionFields): pg.Pool {
  // allowExitOnIdle: the CLI exits once its work is done instead of waiting out idle sockets.
  const pool = new pg.Pool({ ...fields, max: 4, allowExitOnIdle: true });
  // pg's Pool.query calls client.query with a callback; the adapter's transactions call it
  // with promises. Both paths pass through here.
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as AnyQuery;
    (client as unknown as { query: AnyQuery }).query = (...args: unknown[]) => {
      const last = args[args.length - 1];
      if (typeof last === 'function') {
        args[args.length - 1] = (err: unknown, res: pg.QueryResult) => last(err, asText(res));
        return query(...args);
      }
      const result = query(...args);
      return result instanceof Promise ? result.then(asText) : result;
    };
  });
  return pool;
}

export function migrationAdapter(url: string): SqlMigrationAwareDriverAdapterFactory {
  const fields = connectionFields(url);
  const open = (f: ConnectionFields) =>
    new PrismaPg(catalogSafePool(f), { disposeExternalPool: true }).connect();
  return {
    provider: 'postgres',
    adapterName: '@prisma/adapter-pg',
    connect: () => open(fields),
    async connectToShadowDb() {
      const admin = await open(fields);
      const database = `prisma_shadow_${randomUUID().replace(/-/g, '')}`;
      await admin.executeScript(`CREATE DATABASE "${database}"`);
      const shadow = await open({ ...fields, database });
      const dispose = shadow.dispose.bind(shadow);
      shadow.dispose = async () => {
        await dispose();
        await admin.executeScript(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
        await admin.dispose();
      };
      return shadow;
    },
  };
}
