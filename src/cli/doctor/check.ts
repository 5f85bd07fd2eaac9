/** What every doctor check reports: one result per step, with what to do when it did not pass. */

export type CheckStatus = "ok" | "fail" | "warn" | "skip";

export interface CheckResult {
  /** Stable name for scripts: settings, smtp_dns, smtp_connect, smtp_tls, smtp_login, inbox_dns, … */
  check: string;
  status: CheckStatus;
  /** What was checked and what was found, one line. */
  title: string;
  /** What to do, when it did not pass. */
  fix?: string;
  ms?: number;
}

/** Where each result goes as soon as it is known. */
export type Report = (c: CheckResult) => void;

/** How long doctor waits for its own mail and for a host's reply, unless --timeout says otherwise. */
export const DOCTOR_WAIT_MS = 30_000;
/** How long one step (a lookup, a connection, a login) may take. */
export const STEP_TIMEOUT_MS = 15_000;

/** Milliseconds since `t0` (a performance.now() reading). */
export function ms(t0: number): number {
  return Math.round(performance.now() - t0);
}

export function fmtMs(n: number): string {
  return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`;
}
