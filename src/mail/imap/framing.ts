/**
 * IMAP response framing (RFC 3501 §2.2, §4.3): a response is a line, unless the line ends in a
 * literal announcement `{n}` — then exactly n bytes follow and the response continues on the next
 * line, as many times as the server likes. Literal bytes are never searched for tags or CRLF, so
 * a message body that contains "* " or "A1 NO" cannot be mistaken for a response.
 *
 * Everything is capped (line, literal, whole response) so a hostile or broken server can neither
 * make us buffer without bound nor keep us reading one response for ever from a finite stream.
 */
import { MailError } from "../errors.ts";

/** Lines and exact byte counts; LineReader fits (null = clean end of stream). */
export interface LineSource {
  readLineBytes(): Promise<Uint8Array | null>;
  readN(n: number): Promise<Uint8Array>;
}

/** One response as framed: `lines[i]` is followed by `literals[i]` when there is one. */
export interface RawResponse {
  readonly lines: readonly Uint8Array[];
  readonly literals: readonly Uint8Array[];
}

export interface FrameLimits {
  /** Longest line (without CRLF). */
  maxLine: number;
  /** Largest single literal. */
  maxLiteral: number;
  /** Lines plus literals of one response. */
  maxResponse: number;
}

/** Capability lists, SEARCH results and FETCH lines are far below this. */
export const MAX_IMAP_LINE = 1024 * 1024;
/** Outside a FETCH of a body nothing we ask for carries a big literal. */
export const DEFAULT_MAX_LITERAL = 1024 * 1024;
export const DEFAULT_MAX_RESPONSE = 8 * 1024 * 1024;
/** Literals are read in pieces so progress (and the inactivity timer) is seen while they arrive. */
const LITERAL_CHUNK = 64 * 1024;

export const DEFAULT_LIMITS: FrameLimits = {
  maxLine: MAX_IMAP_LINE,
  maxLiteral: DEFAULT_MAX_LITERAL,
  maxResponse: DEFAULT_MAX_RESPONSE,
};

/**
 * `{n}`, `{n+}` (LITERAL+, RFC 7888) or `~{n}` (literal8, RFC 3516) at the very end of a line,
 * as a byte count; undefined when the line does not end in one. More than 12 digits is refused
 * rather than overflow.
 */
export function literalAnnouncement(line: Uint8Array): number | undefined {
  let i = line.length - 1;
  if (i < 2 || line[i] !== 0x7d) return undefined; // }
  i--;
  if (line[i] === 0x2b) i--; // +
  const end = i + 1;
  while (i >= 0 && line[i] >= 0x30 && line[i] <= 0x39) i--;
  const digits = end - (i + 1);
  if (digits === 0 || i < 0 || line[i] !== 0x7b) return undefined; // {
  if (digits > 12) return Number.POSITIVE_INFINITY;
  let n = 0;
  for (let k = i + 1; k < end; k++) n = n * 10 + (line[k] - 0x30);
  return n;
}

export class ResponseReader {
  #src: LineSource;
  #limits: FrameLimits;
  #onProgress?: () => void;

  constructor(src: LineSource, limits: Partial<FrameLimits> = {}, onProgress?: () => void) {
    this.#src = src;
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
    this.#onProgress = onProgress;
  }

  /**
   * The next whole response, or null when the stream ended cleanly between responses. `override`
   * may be a function: it is asked again at each line, because a reader that waits for the next
   * response may be waiting since before the command that allows a big literal was sent.
   */
  async read(
    override: Partial<FrameLimits> | (() => Partial<FrameLimits>) = {},
  ): Promise<RawResponse | null> {
    const current = () => ({ ...this.#limits, ...(typeof override === "function" ? override() : override) });
    let limits = current();
    const lines: Uint8Array[] = [];
    const literals: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const line = await this.#src.readLineBytes();
      if (line === null) {
        if (lines.length === 0) return null;
        throw new MailError("The connection closed in the middle of a response.", "closed");
      }
      limits = current();
      if (line.length > limits.maxLine) {
        throw new MailError(`The server sent a line longer than ${limits.maxLine} bytes.`, "protocol");
      }
      total += line.length + 2;
      this.#checkTotal(total, limits);
      lines.push(line);
      this.#onProgress?.();
      const n = literalAnnouncement(line);
      if (n === undefined) return { lines, literals };
      if (n > limits.maxLiteral) {
        throw new MailError(
          `The server announced a ${
            Number.isFinite(n) ? n : "huge"
          }-byte literal, over the ${limits.maxLiteral}-byte limit.`,
          "too_large",
        );
      }
      total += n;
      this.#checkTotal(total, limits);
      literals.push(await this.#readLiteral(n));
    }
  }

  async #readLiteral(n: number): Promise<Uint8Array> {
    if (n <= LITERAL_CHUNK) {
      const bytes = await this.#src.readN(n);
      this.#onProgress?.();
      return bytes;
    }
    const out = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const piece = await this.#src.readN(Math.min(LITERAL_CHUNK, n - got));
      out.set(piece, got);
      got += piece.length;
      this.#onProgress?.();
    }
    return out;
  }

  #checkTotal(total: number, limits: FrameLimits): void {
    if (total > limits.maxResponse) {
      throw new MailError(`The server sent a response larger than ${limits.maxResponse} bytes.`, "too_large");
    }
  }
}
