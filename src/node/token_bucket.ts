/**
 * A token bucket: `burst` at once, then `perSecond`. The room takes frames from each link through
 * one, so a member flooding the room costs the others a bounded amount of work and bandwidth.
 * Pure: the clock is passed in.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(readonly perSecond: number, readonly burst: number, readonly now: () => number) {
    this.#tokens = burst;
    this.#last = now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.perSecond);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
