-- CreateTable
CREATE TABLE "workspace_servers" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" VARCHAR(255) NOT NULL,
    "hostname" VARCHAR(255) NOT NULL,
    "ip_address" INET NOT NULL,
    "ssh_port" INTEGER DEFAULT 22,
    "docker_port" INTEGER DEFAULT 2376,
    "total_cpu" INTEGER NOT NULL,
    "total_memory_mb" INTEGER NOT NULL,
    "total_disk_gb" INTEGER NOT NULL,
    "used_cpu" DOUBLE PRECISION DEFAULT 0,
    "used_memory_mb" INTEGER DEFAULT 0,
    "used_disk_gb" INTEGER DEFAULT 0,
    "active_workspaces" INTEGER DEFAULT 0,
    "status" VARCHAR(20) DEFAULT 'active',
    "last_heartbeat" TIMESTAMPTZ(6),
    "last_error" TEXT,
    "has_gpu" BOOLEAN DEFAULT false,
    "gpu_type" VARCHAR(50),
    "gpu_count" INTEGER DEFAULT 0,
    "docker_runtime" VARCHAR(20) DEFAULT 'runsc',
    "architecture" VARCHAR(20) DEFAULT 'arm64',
    "labels" JSONB DEFAULT '{}',
    "region" VARCHAR(50),
    "provider" VARCHAR(50),
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "workspace_servers_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "workspaces" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "owner_id" VARCHAR(255) NOT NULL,
    "name" VARCHAR(255) NOT NULL,
    "tier" VARCHAR(20) NOT NULL,
    "status" VARCHAR(20) NOT NULL DEFAULT 'pending',
    "image" VARCHAR(255),
    "status_reason" TEXT,
    "server_id" UUID,
    "container_name" VARCHAR(255),
    "volume_name" VARCHAR(255),
    "assigned_cpu" DOUBLE PRECISION,
    "assigned_memory_mb" INTEGER,
    "assigned_disk_gb" INTEGER,
    "internal_ip" VARCHAR(45),
    "ssh_port" INTEGER,
    "http_port" INTEGER,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "workspaces_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "llm_usage" (
    "id" BIGSERIAL NOT NULL,
    "user_id" VARCHAR(255) NOT NULL,
    "model" VARCHAR(255) NOT NULL,
    "prompt_tokens" INTEGER NOT NULL DEFAULT 0,
    "completion_tokens" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" INTEGER NOT NULL DEFAULT 0,
    "cost_usd" DECIMAL(12,6) NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "llm_usage_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "workspace_servers_hostname_key" ON "workspace_servers"("hostname");

-- CreateIndex
CREATE INDEX "idx_workspace_servers_status" ON "workspace_servers"("status");

-- CreateIndex
CREATE INDEX "idx_workspaces_server_id" ON "workspaces"("server_id");

-- CreateIndex
CREATE INDEX "workspaces_owner_id_idx" ON "workspaces"("owner_id");

-- CreateIndex
CREATE INDEX "llm_usage_user_id_created_at_idx" ON "llm_usage"("user_id", "created_at");

-- AddForeignKey
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_server_id_fkey" FOREIGN KEY ("server_id") REFERENCES "workspace_servers"("id") ON DELETE SET NULL ON UPDATE CASCADE;
