-- AlterTable
ALTER TABLE "llm_usage" ADD COLUMN     "idempotency_key" VARCHAR(255),
ADD COLUMN     "provider" VARCHAR(20) NOT NULL DEFAULT 'openrouter',
ADD COLUMN     "upstream_cost_usd" DECIMAL(12,6) NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "llm_credentials" (
    "user_id" VARCHAR(255) NOT NULL,
    "provider" VARCHAR(20) NOT NULL,
    "secret" BYTEA NOT NULL,
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "llm_credentials_pkey" PRIMARY KEY ("user_id","provider")
);

-- CreateTable
CREATE TABLE "llm_credits" (
    "user_id" VARCHAR(255) NOT NULL,
    "balance_usd" DECIMAL(12,6) NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "llm_credits_pkey" PRIMARY KEY ("user_id")
);

-- CreateTable
CREATE TABLE "llm_model_prices" (
    "model" VARCHAR(255) NOT NULL,
    "prompt_usd" DECIMAL(18,12) NOT NULL,
    "completion_usd" DECIMAL(18,12) NOT NULL,
    "synced_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "llm_model_prices_pkey" PRIMARY KEY ("model")
);

-- CreateTable
CREATE TABLE "llm_jobs" (
    "id" VARCHAR(255) NOT NULL,
    "user_id" VARCHAR(255) NOT NULL,
    "status" VARCHAR(20) NOT NULL DEFAULT 'running',
    "result" JSONB,
    "error" TEXT,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(6),

    CONSTRAINT "llm_jobs_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "llm_jobs_user_id_created_at_idx" ON "llm_jobs"("user_id", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "llm_usage_idempotency_key_key" ON "llm_usage"("idempotency_key");
