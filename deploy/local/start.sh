#!/usr/bin/env bash
# npm start: install what is missing, bring up the local stack, apply migrations, then run
# the worker and the API in the foreground until Ctrl-C (the stack keeps running; stop it
# with `npm run stack:down`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

bash deploy/local/setup.sh
bash deploy/local/stack.sh up
set -a; source "$STACK_DIR/env"; source "$STACK_DIR/secrets.env"; set +a
node prisma/cli.cjs migrate deploy >/dev/null
log "migrations applied"

# Node runs each process itself (tsx as a loader), so signals reach the process doing the work.
TSX="node --import tsx"
$TSX workers/main.ts & worker=$!
$TSX api/main.ts & api=$!
stop() { kill -TERM "$worker" "$api" 2>/dev/null || true; wait "$worker" "$api" 2>/dev/null || true; }
trap 'stop; exit 0' INT TERM

end=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do
  kill -0 "$api" 2>/dev/null && kill -0 "$worker" 2>/dev/null || { stop; die "worker or API exited during start-up"; }
  [ $SECONDS -lt $end ] || { stop; die "API not ready within 60s"; }
  sleep 0.3
done
cat <<MSG

  Podex Orchestrator is running
    API          http://127.0.0.1:$PORT   (GET /readyz)
    Console      http://127.0.0.1:$PORT/admin/   (sign in with: npm run -s token -- admin NAME)
    Temporal UI  $TEMPORAL_UI_URL
    Workspaces   http://ws-ID.localhost:${WORKSPACE_PROXY_ADDRESS##*:}   (Workspace Proxy, Caddy on $WORKSPACE_PROXY_ADDRESS)
    Fleet        $PODEX_LOCAL_ENGINES (Docker over mutual TLS, gVisor)
  Ctrl-C stops the worker and API; 'npm run stack:down' stops the stack.

MSG
wait -n "$worker" "$api" || true
stop
die "a process exited; see the log above"
