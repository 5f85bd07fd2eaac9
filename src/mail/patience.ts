/**
 * How long a started node keeps trying a mail server that does not answer. A provider restarting,
 * a Dovecot restart, Postfix stopped for 20 s, `454 4.7.0 Temporary authentication failure` while
 * the SASL backend is down: all normal, all retried with backoff until the node's own deadline
 * (a join: its --timeout; a host: for ever). Only a permanent failure (a wrong password, a 5xx, a
 * bad URL) ends the work at once (issue 11).
 */
import { backoffDelay, sleep } from "./backoff.ts";
import { isRetriableError, type MailError } from "./errors.ts";
import type { OutgoingMail, Sender, SentInfo } from "./smtp.ts";

export const PATIENCE_BASE_DELAY_MS = 500;
export const PATIENCE_MAX_DELAY_MS = 10_000;

export interface PatienceOptions {
  /** Epoch ms after which a retriable failure is final; Infinity: never. */
  deadline: () => number;
  /** Once when an outage begins (the first retriable failure of `what` since it last worked). */
  onWaiting?: (what: string, err: MailError, deadline: number) => void;
  /** Once when `what` works again after an outage. */
  onRecovered?: (what: string, waitedMs: number) => void;
  clock?: () => number;
  random?: () => number;
  /** Tests pass a fake; the default really waits. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export class Patience {
  #opts: PatienceOptions;
  #clock: () => number;
  /** Per kind of work ("sending", "reading"): failures in a row, when the outage began, the last error. */
  #outages = new Map<string, { attempts: number; since: number; last: MailError }>();

  constructor(opts: PatienceOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? Date.now;
  }

  /** The latest failure of an outage still going on, if any: what a deadline that passes should report. */
  get lastError(): MailError | undefined {
    let out: MailError | undefined;
    for (const o of this.#outages.values()) out = o.last;
    return out;
  }

  /** Runs fn until it succeeds, retrying retriable mail failures with backoff until the deadline. */
  async run<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (;;) {
      try {
        const out = await fn();
        this.ok(what);
        return out;
      } catch (err) {
        if (signal?.aborted) throw err;
        await this.wait(what, err, signal);
      }
    }
  }

  /**
   * After a failure of `what`: rethrows it when it is permanent or the deadline would pass during
   * the next wait; else waits the backoff delay (less if `signal` aborts).
   */
  async wait(what: string, err: unknown, signal?: AbortSignal): Promise<void> {
    if (!isRetriableError(err)) throw err;
    const now = this.#clock();
    let o = this.#outages.get(what);
    if (!o) {
      o = { attempts: 0, since: now, last: err as MailError };
      this.#outages.set(what, o);
    }
    o.attempts++;
    o.last = err as MailError;
    const delay = backoffDelay(o.attempts, {
      reconnectBaseDelayMs: PATIENCE_BASE_DELAY_MS,
      reconnectMaxDelayMs: PATIENCE_MAX_DELAY_MS,
      random: this.#opts.random ?? Math.random,
    });
    const deadline = this.#opts.deadline();
    if (now + delay > deadline) {
      this.#outages.delete(what);
      throw err;
    }
    if (o.attempts === 1) this.#opts.onWaiting?.(what, err as MailError, deadline);
    await (this.#opts.sleep ?? ((ms, s) => sleep(ms, ...(s ? [s] : []))))(delay, signal);
  }

  /** `what` worked: an outage of it, if any, is over. */
  ok(what: string): void {
    const o = this.#outages.get(what);
    if (!o) return;
    this.#outages.delete(what);
    this.#opts.onRecovered?.(what, this.#clock() - o.since);
  }
}

/** A sender that waits out mail server outages with `patience` (each send until its deadline). */
export function patientSender(inner: Sender, patience: Patience, signal?: AbortSignal): Sender {
  return {
    label: inner.label,
    send: (mail: OutgoingMail): Promise<SentInfo> => patience.run("sending", () => inner.send(mail), signal),
    flush: () => inner.flush?.() ?? Promise.resolve(),
    close: () => inner.close(),
    [Symbol.asyncDispose]: () => inner.close(),
  };
}
