#!/usr/bin/env bash
# Writes a new migration from the difference between the committed migrations and
# prisma/schema.prisma:   npm run db:migration -- NAME
# (`prisma migrate dev --create-only` also works offline here but its CLI exits 1 after
# writing the file when the WASM engine is freed twice; `migrate diff` has no such step.)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: npm run db:migration -- NAME}
[[ "$name" =~ ^[a-z0-9_]+$ ]] || { echo "migration name must be lower_snake_case" >&2; exit 2; }
[ -n "${DATABASE_URL:-}" ] || { set -a; source .stack/env; set +a; }
sql=$(node prisma/cli.cjs migrate diff --from-migrations prisma/migrations \
  --to-schema-datamodel prisma/schema.prisma --script)
if ! grep -qv '^--' <<<"$sql" || [ -z "$(grep -v '^\s*--' <<<"$sql" | tr -d '[:space:]')" ]; then
  echo "schema and migrations agree: nothing to write"; exit 0
fi
dir=prisma/migrations/$(date -u +%Y%m%d%H%M%S)_$name
mkdir -p "$dir"; printf '%s\n' "$sql" >"$dir/migration.sql"
echo "wrote $dir/migration.sql"
