/** When to try a batch again: exponential backoff with jitter, or what the collector said in Retry-After. */

export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

/**
 * "Equal jitter": half the exponential step fixed, half random. Thousands of devices coming back online at once
 * spread out instead of hammering the collector in lockstep, yet none retries almost immediately.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when missing or unreadable. */
export function retryAfterMs(header: string | null | undefined, nowMs: number): number | undefined {
  if (header == null || header.trim() === "") return undefined;
  const text = header.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const when = Date.parse(text);
  return Number.isNaN(when) ? undefined : Math.max(0, when - nowMs);
}

/** Statuses where the same batch may succeed later; 400/413/422 never will (the events themselves are refused). */
export function isRetryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}
