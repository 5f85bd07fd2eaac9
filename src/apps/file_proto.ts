/**
 * The file transfer's messages on one "file" stream: `kind u8 | length u32 | body`.
 *
 *   sender → receiver   OFFER  {entries: [{path, size} | {path, dir: true}], total}
 *   receiver → sender   ANSWER {accept, reason?, have: {index: {offset, sha256}}}  (bytes already held)
 *   sender → receiver   FILE   {i, offset}   then DATA… (raw bytes)   then END {i, sha256}
 *   receiver → sender   RESULT {i, ok, error?}   per file, after checking the whole file's hash
 *
 * Resume: the receiver keeps what it got in `.NAME.mailmeet-part` and offers its length and the
 * SHA-256 of those bytes; the sender resumes at that offset only if its own file starts with the
 * same bytes, else it starts over (offset 0). Either way the receiver checks the SHA-256 of the
 * whole file against the sender's before the file takes its final name.
 */
import type { MuxStream } from "../net/mux.ts";

export const FILE_PROTOCOL = "file";

export const M_OFFER = 1;
export const M_ANSWER = 2;
export const M_FILE = 3;
export const M_DATA = 4;
export const M_END = 5;
export const M_RESULT = 6;

const HEADER = 5;
/** JSON messages are small; an offer of a big folder is the largest. */
export const MAX_JSON_MESSAGE = 16 * 1024 * 1024;

export interface OfferEntry {
  path: string;
  size?: number;
  dir?: boolean;
}

export interface Offer {
  entries: OfferEntry[];
  total: number;
}

export interface Answer {
  accept: boolean;
  reason?: string;
  have?: Record<string, { offset: number; sha256: string }>;
}

export class TransferError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "TransferError";
  }
}

export function header(kind: number, len: number): Uint8Array {
  const h = new Uint8Array(HEADER);
  const v = new DataView(h.buffer);
  v.setUint8(0, kind);
  v.setUint32(1, len);
  return h;
}

export async function writeJson(stream: MuxStream, kind: number, value: unknown): Promise<void> {
  const body = new TextEncoder().encode(JSON.stringify(value));
  await stream.write(header(kind, body.length));
  await stream.write(body);
}

/** Reads messages from a stream; DATA bodies come out as views of what arrived, never joined. */
export class MessageReader {
  /** What arrived and was not consumed yet, oldest first. */
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;

  constructor(readonly stream: MuxStream) {}

  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    const next = await this.stream.read();
    if (next === null) {
      this.#ended = true;
      return false;
    }
    if (next.length > 0) {
      this.#chunks.push(next);
      this.#buffered += next.length;
    }
    return true;
  }

  /** Exactly n bytes: a view when one chunk holds them, else only those n bytes are copied. */
  async #exact(n: number): Promise<Uint8Array | null> {
    if (this.#buffered < n) {
      // A stream's chunk is valid only until its next read(): what is kept across reads is copied.
      this.#chunks = this.#chunks.map((c) => c.slice());
      while (this.#buffered < n) {
        if (!(await this.#more())) {
          if (this.#buffered === 0) return null;
          throw new TransferError("The other side stopped in the middle of a message.");
        }
        if (this.#buffered < n && this.#chunks.length > 0) {
          this.#chunks[this.#chunks.length - 1] = this.#chunks.at(-1)!.slice();
        }
      }
    }
    this.#buffered -= n;
    const head = this.#chunks[0];
    if (head.length >= n) {
      if (head.length === n) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(n);
      return head.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.#chunks[0];
      const take = Math.min(c.length, n - at);
      out.set(c.subarray(0, take), at);
      at += take;
      if (take === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(take);
    }
    return out;
  }

  /** The next message's kind and length, or null at the end of the stream. */
  async next(): Promise<{ kind: number; len: number } | null> {
    const h = await this.#exact(HEADER);
    if (h === null) return null;
    const v = new DataView(h.buffer, h.byteOffset, HEADER);
    return { kind: v.getUint8(0), len: v.getUint32(1) };
  }

  async json<T>(len: number): Promise<T> {
    if (len > MAX_JSON_MESSAGE) throw new TransferError("The other side sent an oversized message.");
    const body = await this.#exact(len);
    if (body === null) throw new TransferError("The other side stopped in the middle of a message.");
    try {
      return JSON.parse(new TextDecoder().decode(body)) as T;
    } catch {
      throw new TransferError("The other side sent a message that is not JSON.");
    }
  }

  /** Up to `max` bytes of a DATA body, as they arrived (a view); null at the end of the stream. */
  async some(max: number): Promise<Uint8Array | null> {
    if (this.#buffered === 0 && !(await this.#more())) return null;
    if (this.#buffered === 0) return this.some(max);
    const head = this.#chunks[0];
    const n = Math.min(max, head.length);
    if (n === head.length) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(n);
    this.#buffered -= n;
    return head.subarray(0, n);
  }
}

// ─── Progress ────────────────────────────────────────────────────────────────────────────────

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let x = n;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${x.toFixed(1)} ${units[u]}`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** No byte moved for this long: the bar says "stalled" instead of a speed. */
export const STALL_MS = 3_000;
/** The speed shown is over the bytes moved in this last stretch of time. */
export const RATE_WINDOW_MS = 5_000;

/**
 * A transfer's progress: bytes done against the total, the speed over the bytes actually moved in
 * the last few seconds (bytes an earlier try left and a resume skipped count for the total, never
 * for the speed), and how long nothing moved. `now` is injected so tests need no timers.
 */
export class Progress {
  done = 0;
  moved = 0;
  /** (time, moved) samples, oldest first, reaching back about RATE_WINDOW_MS. */
  #samples: { t: number; moved: number }[];
  #lastMove: number;
  readonly started: number;

  constructor(readonly total: number, readonly now: () => number = () => performance.now()) {
    this.started = now();
    this.#lastMove = this.started;
    this.#samples = [{ t: this.started, moved: 0 }];
  }

  /** `done` counts everything the target holds, `moved` only what travelled in this run. */
  update(done: number, moved: number): void {
    this.done = done;
    if (moved === this.moved) return;
    const t = this.now();
    this.moved = moved;
    this.#lastMove = t;
    this.#samples.push({ t, moved });
    // Keep one sample older than the window as the base the rate is measured from.
    while (this.#samples.length > 1 && this.#samples[1].t <= t - RATE_WINDOW_MS) this.#samples.shift();
  }

  /** Bytes a second over the last RATE_WINDOW_MS, measured up to now: it falls when nothing moves. */
  get rate(): number {
    const t = this.now();
    const since = Math.max(this.started, t - RATE_WINDOW_MS);
    // moved is a step function of time: its value at `since` is the newest sample not after it.
    let base = this.#samples[0];
    for (const s of this.#samples) if (s.t <= since) base = s;
    const span = (t - since) / 1000;
    return span > 0 ? (this.moved - base.moved) / span : 0;
  }

  /** How long nothing moved, once that is STALL_MS or more; else 0. */
  get stalledMs(): number {
    const quiet = this.now() - this.#lastMove;
    return quiet >= STALL_MS ? quiet : 0;
  }

  /** Bytes a second over the whole run (what travelled, from the start). */
  get average(): number {
    const s = (this.now() - this.started) / 1000;
    return s > 0 ? this.moved / s : 0;
  }

  get percent(): number {
    return this.total > 0 ? Math.floor(Math.min(1, this.done / this.total) * 100) : 100;
  }

  /** "31.2 MiB/s, 0:04 left" or "stalled 12 s". */
  pace(): string {
    const stalled = this.stalledMs;
    if (stalled > 0) return `stalled ${Math.floor(stalled / 1000)} s`;
    const rate = this.rate;
    const left = rate > 0 ? (this.total - this.done) / rate : Infinity;
    return `${formatBytes(rate)}/s, ${formatSeconds(left)} left`;
  }

  /** `[#######.............]  35%  70.0 MiB / 200.0 MiB  31.2 MiB/s, 0:04 left` */
  bar(width = 24): string {
    const f = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const filled = Math.round(f * width);
    return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(this.percent).padStart(3)}%  ${
      formatBytes(this.done)
    } / ${formatBytes(this.total)}  ${this.pace()}`;
  }
}

/** Interrupted here (Ctrl-C): the other side was told, what arrived is kept. Exit 130, not 4. */
export class TransferInterrupted extends TransferError {
  constructor(message: string) {
    super(message);
    this.name = "TransferInterrupted";
  }
}

/** Why a stream or link failed, as a phrase to put in parentheses ("ann stopped sending"). */
export function failureReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const reset = /reset the stream: (.*)$/s.exec(text);
  if (reset) return reset[1].replace(/[.\s]+$/, "");
  // The link's own words name sockets and OS errors; what matters here is that the connection is gone.
  if (/connection broke|os error|broken pipe|reset by peer|ECONNRESET|EPIPE/i.test(text)) {
    return "the connection broke";
  }
  const phrase = text.replace(/[.\s]+$/, "");
  // A sentence of its own becomes a phrase inside ours: "The link to bob closed" → "the link to bob closed".
  return /^[A-Z][a-z]/.test(phrase) ? phrase[0].toLowerCase() + phrase.slice(1) : phrase;
}

/** What a side says to the other when it stops on Ctrl-C (the other shows it in its sentence). */
export const SENDER_STOPPED = "the sender was interrupted";
export const RECEIVER_STOPPED = "the receiver was interrupted";
