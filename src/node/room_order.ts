/**
 * Which flooded chat lines are new, and in what order to show them (src/node/room.ts). A line
 * reaches a node once per path, so every copy after the first is dropped here; lines of one
 * sender come out in the order it said them, even when a later one took a shorter path.
 *
 * Per sender and run: `next`, the sequence number to show next, and the lines that came ahead of
 * it. Memory is bounded whatever members send: a line further than `window` ahead is refused (a
 * forged or replayed id cannot make us hold or skip much), a gap is waited on for `gapWaitMs` and
 * then skipped, and only the most recent `maxOrigins` senders and `maxRuns` runs each are kept.
 * Pure: the clock is passed in.
 */
import type { SayFrame } from "./room_wire.ts";

/** Lines further ahead of the next expected one than this are refused. */
export const ORDER_WINDOW = 256;
/** A missing line is waited for this long (it may be on a longer path), then skipped. */
export const GAP_WAIT_MS = 3_000;
export const MAX_ORIGINS = 256;
export const MAX_RUNS = 4;

export interface Arrival {
  frame: SayFrame;
  /** The member it came from. */
  via: string;
}

export type Verdict = "new" | "duplicate" | "too_far";

interface RunState {
  next: number;
  held: Map<number, Arrival>;
  /** When the oldest gap started (undefined: nothing held). */
  gapSince?: number;
}

export interface OrderOptions {
  now: () => number;
  window?: number;
  gapWaitMs?: number;
  maxOrigins?: number;
  maxRuns?: number;
}

export class SenderOrder {
  /** origin → run → state; Map order is least recently heard first (LRU eviction). */
  readonly #origins = new Map<string, Map<string, RunState>>();
  readonly #window: number;
  readonly #gapWait: number;
  readonly #maxOrigins: number;
  readonly #maxRuns: number;

  constructor(readonly opts: OrderOptions) {
    this.#window = opts.window ?? ORDER_WINDOW;
    this.#gapWait = opts.gapWaitMs ?? GAP_WAIT_MS;
    this.#maxOrigins = opts.maxOrigins ?? MAX_ORIGINS;
    this.#maxRuns = opts.maxRuns ?? MAX_RUNS;
  }

  /**
   * Takes one arriving line: "new" (forward it) or why not, and the lines now due to be shown,
   * in order (this one, and any it was the gap for).
   */
  accept(a: Arrival): { verdict: Verdict; due: Arrival[] } {
    const { o, r, s } = a.frame;
    const run = this.#run(o, r, s);
    if (s < run.next || run.held.has(s)) return { verdict: "duplicate", due: [] };
    if (s >= run.next + this.#window) return { verdict: "too_far", due: [] };
    run.held.set(s, a);
    run.gapSince ??= this.opts.now();
    return { verdict: "new", due: this.#release(run) };
  }

  /** Lines released because the gap before them was waited on long enough (call now and then). */
  due(): Arrival[] {
    const now = this.opts.now();
    const out: Arrival[] = [];
    for (const runs of this.#origins.values()) {
      for (const run of runs.values()) {
        if (run.gapSince === undefined || now - run.gapSince < this.#gapWait) continue;
        run.next = Math.min(...run.held.keys());
        out.push(...this.#release(run));
      }
    }
    return out;
  }

  /** How many senders and runs are remembered (for tests of the bounds). */
  get size(): { origins: number; runs: number; held: number } {
    let runs = 0;
    let held = 0;
    for (const r of this.#origins.values()) {
      runs += r.size;
      for (const s of r.values()) held += s.held.size;
    }
    return { origins: this.#origins.size, runs, held };
  }

  #run(origin: string, id: string, s: number): RunState {
    let runs = this.#origins.get(origin);
    if (runs) this.#origins.delete(origin);
    else runs = new Map();
    this.#origins.set(origin, runs);
    if (this.#origins.size > this.#maxOrigins) this.#origins.delete(this.#origins.keys().next().value!);
    let run = runs.get(id);
    if (run) runs.delete(id);
    // The first line heard of a run starts it: what it said before we came is not ours to wait for.
    else run = { next: s, held: new Map() };
    runs.set(id, run);
    if (runs.size > this.#maxRuns) runs.delete(runs.keys().next().value!);
    return run;
  }

  #release(run: RunState): Arrival[] {
    const out: Arrival[] = [];
    for (let a = run.held.get(run.next); a; a = run.held.get(run.next)) {
      run.held.delete(run.next);
      run.next++;
      out.push(a);
    }
    // A gap that remains after some lines went out is a new gap: its wait starts now.
    if (run.held.size === 0) run.gapSince = undefined;
    else if (out.length > 0) run.gapSince = this.opts.now();
    return out;
  }
}
