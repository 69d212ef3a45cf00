-- AlterTable
ALTER TABLE "workspace_servers" ADD COLUMN     "host_cpus" INTEGER;
