/** Timers a test fires by hand (src/util/deadline.ts `Timers`): no real sleeps, no wall clock. */
import type { Timers } from "../../src/util/deadline.ts";

export class FakeTimers implements Timers {
  #next = 1;
  readonly #pending = new Map<number, { fn: () => void; ms: number }>();

  setTimeout(fn: () => void, ms: number): number {
    const id = this.#next++;
    this.#pending.set(id, { fn, ms });
    return id;
  }

  clearTimeout(id: unknown): void {
    this.#pending.delete(id as number);
  }

  /** How many timers are set and not yet fired or cleared. */
  get pending(): number {
    return this.#pending.size;
  }

  /** The delays of the timers still set. */
  get delays(): number[] {
    return [...this.#pending.values()].map((t) => t.ms);
  }

  /** Fires every pending timer, as if their time had come. */
  fireAll(): void {
    const due = [...this.#pending.values()];
    this.#pending.clear();
    for (const t of due) t.fn();
  }
}
