#!/usr/bin/env bash
# npm run bench:NAME → starts the stack, migrates the bench database, runs bench/NAME.ts.
# The benchmark's last line of output is one JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: bench/run.sh NAME}
bash deploy/local/setup.sh >&2
bash deploy/local/stack.sh up >&2
set -a; source .stack/env; source .stack/secrets.env; set +a
export DATABASE_URL=${DATABASE_URL%/*}/podex_bench
node prisma/cli.cjs migrate deploy >/dev/null 2>&1
exec node_modules/.bin/tsx "bench/$name.ts"
