/** Reconnecting politely: shared by the IMAP and POP3 clients. */

export interface BackoffTuning {
  reconnectBaseDelayMs: number;
  reconnectMaxDelayMs: number;
  /** [0, 1) source for the jitter. */
  random: () => number;
}

/** Delay before connection attempt `attempt + 1`: exponential, capped, half of it random ("equal jitter"). */
export function backoffDelay(attempt: number, tuning: BackoffTuning): number {
  const ceiling = Math.min(tuning.reconnectMaxDelayMs, tuning.reconnectBaseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + tuning.random() * ceiling / 2);
}

/** Waits `ms`, or less if any signal aborts; never rejects. */
export function sleep(ms: number, ...signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    if (signals.some((s) => s.aborted)) return resolve();
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of signals) s.addEventListener("abort", done, { once: true });
  });
}
