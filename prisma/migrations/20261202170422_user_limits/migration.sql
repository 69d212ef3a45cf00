-- CreateTable
CREATE TABLE "user_limits" (
    "user_id" VARCHAR(255) NOT NULL,
    "plan" VARCHAR(32),
    "max_workspaces" INTEGER,
    "max_cpu" DOUBLE PRECISION,
    "max_memory_mb" INTEGER,
    "max_disk_gb" INTEGER,
    "max_gpus" INTEGER,
    "tiers" JSONB,
    "server_choice" BOOLEAN,
    "updated_by" VARCHAR(255) NOT NULL,
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "user_limits_pkey" PRIMARY KEY ("user_id")
);
