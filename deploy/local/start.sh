#!/usr/bin/env bash
# npm start: install what is missing, bring up the local stack, apply migrations, then run
# the worker and the API in the foreground until Ctrl-C, under a supervisor that starts either
# again when it dies (the stack keeps running; stop it with `npm run stack:down`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

bash deploy/local/setup.sh
bash deploy/local/stack.sh up
set -a; source "$STACK_DIR/env"; source "$STACK_DIR/secrets.env"; set +a
node prisma/cli.cjs migrate deploy >/dev/null
log "migrations applied"

# The supervisor (deploy/local/supervise.ts) runs the worker and the API, starts either again when
# it exits or is killed (back-off, logged with the reason), and stops both on Ctrl-C or SIGTERM.
node --import tsx deploy/local/supervise.ts & supervisor=$!
stop() { kill -TERM "$supervisor" 2>/dev/null || true; wait "$supervisor"; }
trap 'stop; exit $?' INT TERM

end=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do
  kill -0 "$supervisor" 2>/dev/null || die "the supervisor exited during start-up; see the log above"
  [ $SECONDS -lt $end ] || { stop || true; die "API not ready within 60s"; }
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
wait "$supervisor"
