/**
 * Podex credits in PostgreSQL: balances, holds for calls in flight, settled usage and top-ups.
 * Every change to a user's holds or balance first locks that user's llm_credits row, so a hold
 * is granted only against what no other call has already set aside.
 */
import { createHash } from 'node:crypto';
import { showUsd, type Attempt } from '../domain/llm';
import type { PrismaClient } from './prisma';

/** A second use of an Idempotency-Key with a different request. */
export class IdempotencyKeyReused extends Error {}

/** The most a balance holds: llm_credits.balance_usd is numeric(20, 12), eight digits before the point. */
export const MAX_BALANCE_USD = '99999999.999999999999';

/** A top-up that would take the balance past MAX_BALANCE_USD (the column would overflow). */
export class BalanceLimitExceeded extends Error {}

export interface UsageRecord {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  upstreamUsd: string;
  chargedUsd: string;
  /** The provider's count, or our estimate of what was streamed before the stream was cut. */
  estimated?: boolean;
}

/** A job's hold id, the same on every attempt: a UUID from the key's hash. */
function holdIdOf(key: string): string {
  const h = createHash('sha256').update(`llm-hold:${key}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

// Interactive transactions wait for the row lock behind concurrent calls of the same user.
const TX = { maxWait: 10_000, timeout: 15_000 };

export class CreditLedger {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly holdTtlSeconds: number,
  ) {}

  async balance(userId: string): Promise<string> {
    const row = await this.prisma.llmCredit.findUnique({ where: { userId } });
    return showUsd(row ? row.balanceUsd.toFixed(12) : '0');
  }

  /**
   * Sets `amountUsd` aside for a call if the balance, less every live hold, covers it; the hold's
   * id, or undefined when it does not fit. Expired holds (their process died) no longer count.
   * With an idempotency key (a job's id) the hold is that key's: a retry replaces the hold its
   * crashed attempt left instead of being refused for it.
   */
  async hold(userId: string, amountUsd: string, idempotencyKey?: string): Promise<string | undefined> {
    const id = idempotencyKey ? holdIdOf(idempotencyKey) : null;
    return this.prisma.$transaction(async (tx) => {
      const locked = await tx.$queryRaw<{ balance: string }[]>`SELECT balance_usd::text AS balance FROM llm_credits WHERE user_id = ${userId} FOR UPDATE`;
      if (!locked.length) return undefined;
      await tx.$executeRaw`DELETE FROM llm_holds WHERE (user_id = ${userId} AND expires_at <= now()) OR id = ${id}::uuid`;
      // A separate statement after the lock: it sees every hold committed by whoever held the lock before.
      const rows = await tx.$queryRaw<{ id: string }[]>`
        INSERT INTO llm_holds (id, user_id, amount_usd, expires_at)
        SELECT COALESCE(${id}::uuid, gen_random_uuid()), ${userId}, ${amountUsd}::numeric, now() + make_interval(secs => ${this.holdTtlSeconds})
        WHERE ${locked[0].balance}::numeric - (SELECT COALESCE(sum(amount_usd), 0) FROM llm_holds WHERE user_id = ${userId} AND expires_at > now())
              >= GREATEST(${amountUsd}::numeric, 0.000000000001)
        RETURNING id::text`;
      return rows[0]?.id;
    }, TX);
  }

  /** Deletes holds that expired (their process died) for users who have not called since. */
  async sweep(): Promise<number> {
    return this.prisma.$executeRaw`DELETE FROM llm_holds WHERE expires_at <= now()`;
  }

  /** Gives a hold back without charging (the call did not happen, or the user's own key served it). */
  async release(userId: string, holdId: string): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT 1 FROM llm_credits WHERE user_id = ${userId} FOR UPDATE`;
      await tx.$executeRaw`DELETE FROM llm_holds WHERE id = ${holdId}::uuid`;
    }, TX);
  }

  /**
   * Records a call in llm_usage and, on Podex credits, charges it, dropping its hold in the same
   * transaction. With an idempotency key the same call is recorded and charged once.
   */
  async settle(userId: string, a: Attempt, u: UsageRecord, holdId?: string, idempotencyKey?: string): Promise<boolean> {
    return this.prisma.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT 1 FROM llm_credits WHERE user_id = ${userId} FOR UPDATE`;
      if (holdId) await tx.$executeRaw`DELETE FROM llm_holds WHERE id = ${holdId}::uuid`;
      const inserted = await tx.$executeRaw`
        INSERT INTO llm_usage (user_id, provider, model, prompt_tokens, completion_tokens, total_tokens, cost_usd, upstream_cost_usd, idempotency_key)
        VALUES (${userId}, ${a.provider}, ${a.model}, ${u.promptTokens}, ${u.completionTokens}, ${u.totalTokens},
                ${u.chargedUsd}::numeric, ${u.upstreamUsd}::numeric, ${idempotencyKey ?? null})
        ON CONFLICT (idempotency_key) DO NOTHING`;
      if (inserted && a.billed) {
        await tx.$executeRaw`
          INSERT INTO llm_credits (user_id, balance_usd, updated_at) VALUES (${userId}, -${u.chargedUsd}::numeric, now())
          ON CONFLICT (user_id) DO UPDATE SET balance_usd = llm_credits.balance_usd - ${u.chargedUsd}::numeric, updated_at = now()`;
      }
      return inserted > 0;
    }, TX);
  }

  /**
   * Adds credit once per Idempotency-Key: a repeat of the same top-up answers the balance it left;
   * the same key with another user or amount is refused.
   */
  async topUp(userId: string, addUsd: string, key: string, actor: string): Promise<{ applied: boolean; balanceUsd: string }> {
    return this.prisma.$transaction(async (tx) => {
      // A concurrent twin waits here on the key's index entry until the first commits, then finds it.
      const fresh = await tx.$executeRaw`
        INSERT INTO llm_topups (idempotency_key, user_id, add_usd, actor, balance_usd) VALUES (${key}, ${userId}, ${addUsd}::numeric, ${actor}, 0)
        ON CONFLICT (idempotency_key) DO NOTHING`;
      if (!fresh) {
        const [prior] = await tx.$queryRaw<{ same: boolean; balance: string }[]>`
          SELECT (user_id = ${userId} AND add_usd = ${addUsd}::numeric) AS same, balance_usd::text AS balance FROM llm_topups WHERE idempotency_key = ${key}`;
        if (!prior.same) throw new IdempotencyKeyReused('Idempotency-Key was already used for a different top-up');
        return { applied: false, balanceUsd: showUsd(prior.balance) };
      }
      const [row] = await tx.$queryRaw<{ balance: string }[]>`
        INSERT INTO llm_credits (user_id, balance_usd, updated_at) VALUES (${userId}, ${addUsd}::numeric, now())
        ON CONFLICT (user_id) DO UPDATE SET balance_usd = llm_credits.balance_usd + ${addUsd}::numeric, updated_at = now()
        WHERE llm_credits.balance_usd + ${addUsd}::numeric <= ${MAX_BALANCE_USD}::numeric
        RETURNING balance_usd::text AS balance`;
      // Thrown inside the transaction, so the top-up's key is not kept either.
      if (!row) throw new BalanceLimitExceeded(`the balance would exceed ${MAX_BALANCE_USD} USD`);
      await tx.$executeRaw`UPDATE llm_topups SET balance_usd = ${row.balance}::numeric WHERE idempotency_key = ${key}`;
      // audit_log.target_id is 64 characters; a user id may have 255 (as user-limits records it).
      await tx.auditLog.create({ data: { actor, action: 'credits.add', targetType: 'user', targetId: userId.slice(0, 64), after: { addUsd, userId, idempotencyKey: key } } });
      return { applied: true, balanceUsd: showUsd(row.balance) };
    }, TX);
  }
}
