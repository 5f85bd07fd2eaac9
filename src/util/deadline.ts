/**
 * Bounding a wait in time, after Deno std's `async/deadline.ts` and `async/abortable.ts` (which
 * this project cannot import: JSR is out of reach). One helper instead of a `Promise.race` against
 * a hand-written `setTimeout` at every wait: it always clears its timer (a pending timer keeps the
 * process alive and trips the test sanitizers), and a value that arrives after the wait was given
 * up is handed to `onLate` so a late connection can be closed instead of leaking.
 *
 * A leaf module: it imports nothing, so every layer (mail, net, roles, cli) may use it.
 */

/** The two timer calls the helpers need; tests pass fakes and fire them by hand. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export const SYSTEM_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

/** The time given to a wait ran out (std's `deadline` rejects with a DOMException "TimeoutError"). */
export class DeadlineError extends Error {
  readonly code = "deadline";
  constructor(readonly ms: number) {
    super(`Deadline of ${ms} ms passed.`);
    this.name = "DeadlineError";
  }
}

export interface AbortableOptions<T> {
  /** Receives the value when `p` fulfils after the wait was given up: close what nobody will use. */
  onLate?: (value: T) => void;
}

export interface DeadlineOptions<T> extends AbortableOptions<T> {
  /** Gives up earlier, with the signal's reason. */
  signal?: AbortSignal;
  timers?: Timers;
}

/**
 * Settles as `p` does, or rejects with `signal.reason` as soon as `signal` aborts. A rejection of
 * `p` after that is swallowed (nobody awaits it any more); a late value goes to `onLate`.
 */
export function abortable<T>(p: Promise<T>, signal: AbortSignal, opts: AbortableOptions<T> = {}): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let gaveUp = false;
    const onAbort = () => {
      gaveUp = true;
      reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (gaveUp) opts.onLate?.(value);
        else resolve(value);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        if (!gaveUp) reject(err);
      },
    );
  });
}

/**
 * Settles as `p` does if it does within `ms`; otherwise rejects with a DeadlineError (or, when
 * `opts.signal` aborts first, with its reason). The timer is cleared either way.
 */
export async function deadline<T>(p: Promise<T>, ms: number, opts: DeadlineOptions<T> = {}): Promise<T> {
  using limit = deadlineSignal(ms, opts);
  return await abortable(p, limit.signal, opts);
}

/** A signal that aborts with a DeadlineError after `ms`; disposing it clears the timer. */
export interface DeadlineSignal extends Disposable {
  readonly signal: AbortSignal;
}

/**
 * For waits that take a signal rather than a promise (`mailbox.watch(signal)`, `Deno.connect`).
 * Disposing clears the timer and aborts the signal (with an AbortError, not a DeadlineError), so
 * whatever still watches it stops.
 */
export function deadlineSignal(
  ms: number,
  opts: { signal?: AbortSignal; timers?: Timers } = {},
): DeadlineSignal {
  const timers = opts.timers ?? SYSTEM_TIMERS;
  const timeout = new AbortController();
  const id = timers.setTimeout(() => timeout.abort(new DeadlineError(ms)), ms);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout.signal]) : timeout.signal;
  return {
    signal,
    [Symbol.dispose]() {
      timers.clearTimeout(id);
      timeout.abort();
    },
  };
}
