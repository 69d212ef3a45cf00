-- AlterTable
ALTER TABLE "workspace_servers" ADD COLUMN     "reserved_cpu" DOUBLE PRECISION NOT NULL DEFAULT 0,
ADD COLUMN     "reserved_disk_gb" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "reserved_memory_mb" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "workspaces" ADD COLUMN     "constraints" JSONB,
ADD COLUMN     "disk_limit" VARCHAR(64),
ADD COLUMN     "last_activity_at" TIMESTAMPTZ(6),
ADD COLUMN     "network_name" VARCHAR(255),
ADD COLUMN     "strategy" VARCHAR(16) NOT NULL DEFAULT 'SPREAD';
