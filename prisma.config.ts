import path from 'node:path';
import { defineConfig } from 'prisma/config';
import { migrationAdapter } from './prisma/migration-adapter';

// Prisma's native schema engine cannot be downloaded here; the JS engine with the pg
// adapter runs migrations offline. DATABASE_URL comes from the environment (.stack/env locally).
export default defineConfig({
  engine: 'js',
  experimental: { adapter: true },
  schema: path.join('prisma', 'schema.prisma'),
  migrations: { path: path.join('prisma', 'migrations') },
  async adapter() {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error('DATABASE_URL is not set (source .stack/env or export it)');
    return migrationAdapter(url);
  },
});
