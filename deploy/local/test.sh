#!/usr/bin/env bash
# npm test: everything the suite needs is started here, then type-check, lint and jest.
# Extra arguments go to jest (e.g. `npm test -- test/gvisor.test.ts`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
t0=$SECONDS

bash deploy/local/setup.sh
bash deploy/local/stack.sh up
set -a; source "$STACK_DIR/env"; source "$STACK_DIR/secrets.env"; set +a
DATABASE_URL=$TEST_DATABASE_URL node prisma/cli.cjs migrate deploy >/dev/null
log "test database migrated"

# Leftovers of an earlier, interrupted run would skew capacity and names.
for i in $(seq 1 "$ENGINE_COUNT"); do
  for label in podex.test=1 podex.owner=test-user; do
    ids=$(engine_cli "$i" ps -aq --filter "label=$label")
    [ -z "$ids" ] || engine_cli "$i" rm -f $ids >/dev/null
    engine_cli "$i" network prune -f --filter "label=$label" >/dev/null
    engine_cli "$i" volume prune -f --filter "label=$label" >/dev/null
  done
done

if [ $# -eq 0 ]; then
  log "type-check"; node_modules/.bin/tsc --noEmit -p .
  log "lint"; node_modules/.bin/eslint .
fi

results=$STACK_DIR/jest-results.json
rc=0
node_modules/.bin/jest --json --outputFile="$results" "$@" || rc=$?
if [ -s "$results" ]; then
  node -e '
    const r = require(process.argv[1]);
    console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
  ' "$results"
fi
log "suite finished in $((SECONDS - t0))s"
exit $rc
