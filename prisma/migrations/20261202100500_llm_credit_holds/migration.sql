-- Credits to 10^-12 USD: a call costing less than a micro-dollar is still charged.
ALTER TABLE "llm_credits" ALTER COLUMN "balance_usd" SET DATA TYPE DECIMAL(20,12);
ALTER TABLE "llm_usage" ALTER COLUMN "cost_usd" SET DATA TYPE DECIMAL(20,12),
ALTER COLUMN "upstream_cost_usd" SET DATA TYPE DECIMAL(20,12);

-- AlterTable
ALTER TABLE "llm_model_prices" ADD COLUMN     "max_completion_tokens" INTEGER;

-- CreateTable
CREATE TABLE "llm_holds" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "user_id" VARCHAR(255) NOT NULL,
    "amount_usd" DECIMAL(20,12) NOT NULL,
    "expires_at" TIMESTAMPTZ(6) NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "llm_holds_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "llm_topups" (
    "idempotency_key" VARCHAR(255) NOT NULL,
    "user_id" VARCHAR(255) NOT NULL,
    "add_usd" DECIMAL(20,12) NOT NULL,
    "actor" VARCHAR(255) NOT NULL,
    "balance_usd" DECIMAL(20,12) NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "llm_topups_pkey" PRIMARY KEY ("idempotency_key")
);

-- CreateTable
CREATE TABLE "llm_answers" (
    "idempotency_key" VARCHAR(255) NOT NULL,
    "user_id" VARCHAR(255) NOT NULL,
    "attempt" JSONB NOT NULL,
    "completion" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "llm_answers_pkey" PRIMARY KEY ("idempotency_key")
);

-- CreateIndex
CREATE INDEX "llm_holds_user_id_expires_at_idx" ON "llm_holds"("user_id", "expires_at");

-- CreateIndex
CREATE INDEX "llm_topups_user_id_created_at_idx" ON "llm_topups"("user_id", "created_at");
