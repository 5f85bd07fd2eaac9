/** A Clock (src/net/clock.ts) that moves only when a test says so: timers fire inside advance(). */
import type { CancelTimer, Clock } from "../../src/net/clock.ts";

interface Timer {
  at: number;
  every: number; // 0: once
  fn: () => void;
}

export class ManualClock implements Clock {
  #now: number;
  #timers = new Set<Timer>();

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  after(ms: number, fn: () => void): CancelTimer {
    return this.#add({ at: this.#now + ms, every: 0, fn });
  }

  every(ms: number, fn: () => void): CancelTimer {
    return this.#add({ at: this.#now + ms, every: Math.max(1, ms), fn });
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time on by `ms`, firing every timer that falls due, earliest first, each at its own time. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: Timer | null = null;
      for (const t of this.#timers) if (t.at <= end && (next === null || t.at < next.at)) next = t;
      if (next === null) break;
      this.#now = next.at;
      if (next.every > 0) next.at += next.every;
      else this.#timers.delete(next);
      next.fn();
    }
    this.#now = end;
  }

  #add(t: Timer): CancelTimer {
    this.#timers.add(t);
    return () => this.#timers.delete(t);
  }
}
