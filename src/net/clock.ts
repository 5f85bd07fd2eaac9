/**
 * Time as the network code sees it: a monotonic `now` and timers. Production passes nothing and
 * gets the system clock; tests inject a manual clock (tests/helpers/manual_clock.ts) and move time
 * on by hand, so nothing waits for real time.
 */

/** Cancels a timer; calling it again, or after the timer fired, does nothing. */
export type CancelTimer = () => void;

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): CancelTimer;
  /** Calls `fn` every `ms`. A background timer: it alone must not keep the process running. */
  every(ms: number, fn: () => void): CancelTimer;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    Deno.unrefTimer(timer);
    return () => clearInterval(timer);
  },
};
