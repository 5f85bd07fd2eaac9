/**
 * One line at the bottom of a terminal that is redrawn in place (a progress bar), with every other
 * line printed above it: the live line is wiped first and drawn again below, so a message never
 * lands on the bar's line and no stale bar is left behind.
 */

const CLEAR = "\r\x1b[K";

export class LiveLine {
  #text: string | null = null;
  readonly #enc = new TextEncoder();

  /** `write` takes raw terminal output (the tests pass their own). */
  constructor(readonly write: (bytes: Uint8Array) => void) {}

  /** Whether a live line is drawn now. */
  get shown(): boolean {
    return this.#text !== null;
  }

  /** Draws (or redraws) the live line. */
  show(text: string): void {
    this.#text = text;
    this.#out(`${CLEAR}${text}`);
  }

  /** Prints a whole line above the live line. */
  print(line: string): void {
    this.#out(this.#text === null ? `${line}\n` : `${CLEAR}${line}\n${this.#text}`);
  }

  /** Wipes the live line; `final` (if any) stays in its place as a normal line. */
  clear(final?: string): void {
    if (this.#text === null) {
      if (final !== undefined) this.#out(`${final}\n`);
      return;
    }
    this.#text = null;
    this.#out(final === undefined ? CLEAR : `${CLEAR}${final}\n`);
  }

  #out(text: string): void {
    this.write(this.#enc.encode(text));
  }
}
