-- CreateTable
CREATE TABLE "migrations" (
    "workspace_id" UUID NOT NULL,
    "workflow_id" VARCHAR(255) NOT NULL,
    "drain_id" VARCHAR(255),
    "source_server_id" UUID NOT NULL,
    "target_server_id" UUID,
    "reserved_cpu" DOUBLE PRECISION,
    "reserved_memory_mb" INTEGER,
    "reserved_disk_gb" INTEGER,
    "started_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "migrations_pkey" PRIMARY KEY ("workspace_id")
);
