#!/usr/bin/env node
// Runs the Prisma CLI offline: migrations use Prisma's JS schema engine driven through
// @prisma/adapter-pg (prisma.config.ts), so no native engine has to be downloaded, and
// prisma/unref-timers.cjs lets the CLI exit when its work is done.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const cli = require.resolve('prisma/build/index.js');
const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' };
// The schema names env("DATABASE_URL"); when it cannot be resolved the CLI silently falls
// back to the native engine and tries to download it. `generate` never connects, so a
// placeholder is enough there.
if (!env.DATABASE_URL && process.argv[2] === 'generate') env.DATABASE_URL = 'postgresql://unused@127.0.0.1/unused';
const result = spawnSync(
  process.execPath,
  ['-r', path.join(__dirname, 'unref-timers.cjs'), cli, ...process.argv.slice(2)],
  { stdio: 'inherit', env },
);
process.exit(result.status ?? 1);
