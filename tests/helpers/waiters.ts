/**
 * A sync point for tests (the pattern of FakeImap's nextIdle): code under test calls `fire()` when
 * something happens; a test awaits `next()`, taken before the event it waits for, instead of sleeping.
 */
export class Waiters {
  #waiting: (() => void)[] = [];

  /** Resolves at the next fire() after this call. */
  next(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  fire = (): void => {
    for (const w of this.#waiting.splice(0)) w();
  };
}
