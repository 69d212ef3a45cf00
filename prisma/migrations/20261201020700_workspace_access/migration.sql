-- AlterTable
ALTER TABLE "workspace_servers" ADD COLUMN     "private_address" INET;

-- AlterTable
ALTER TABLE "workspaces" ADD COLUMN     "preview_ports" INTEGER[] DEFAULT ARRAY[]::INTEGER[],
ADD COLUMN     "published_ports" JSONB,
ADD COLUMN     "route_hold" VARCHAR(16);

-- CreateIndex
CREATE INDEX "workspaces_updated_at_idx" ON "workspaces"("updated_at");
