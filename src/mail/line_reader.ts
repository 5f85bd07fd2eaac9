/**
 * One buffered reader under every text protocol (IMAP, POP3): CRLF lines and exact byte counts,
 * both capped so a hostile server cannot make us buffer without bound.
 */
import { MailError } from "./errors.ts";

/** Anything that fills a buffer and says how much it wrote, or null at end of stream (Deno.Conn fits). */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

/** Longest line a text protocol's server may send us unless told otherwise: a POP3 reply or a greeting. */
export const MAX_REPLY_LINE = 64 * 1024;

export class LineReader {
  #src: ByteSource;
  #buf = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  #eof = false;

  constructor(src: ByteSource, readonly maxLine = MAX_REPLY_LINE) {
    this.#src = src;
  }

  /** Bytes already read from the source but not yet consumed (must be empty before STARTTLS). */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Swap the byte source (after a TLS upgrade). */
  setSource(src: ByteSource): void {
    this.#src = src;
  }

  /** Next line without its CRLF (a bare LF is tolerated), or null at a clean end of stream. */
  async readLine(): Promise<string | null> {
    const bytes = await this.readLineBytes();
    return bytes === null ? null : new TextDecoder().decode(bytes);
  }

  async readLineBytes(): Promise<Uint8Array | null> {
    // Offset from #start already searched: #fill may move the buffer, so keep it relative.
    let scanned = 0;
    for (;;) {
      const nl = this.#buf.subarray(this.#start + scanned, this.#end).indexOf(0x0a);
      if (nl >= 0) {
        const lf = this.#start + scanned + nl;
        if (lf - this.#start > this.maxLine) {
          throw new MailError(`The server sent a line longer than ${this.maxLine} bytes.`, "protocol");
        }
        let stop = lf;
        if (stop > this.#start && this.#buf[stop - 1] === 0x0d) stop--;
        const line = this.#buf.slice(this.#start, stop);
        this.#start = lf + 1;
        return line;
      }
      if (this.#end - this.#start > this.maxLine) {
        throw new MailError(`The server sent a line longer than ${this.maxLine} bytes.`, "protocol");
      }
      scanned = this.#end - this.#start;
      if (!(await this.#fill())) {
        if (this.#end === this.#start) return null;
        throw new MailError("The connection closed in the middle of a line.", "closed");
      }
    }
  }

  /** Exactly n bytes (an IMAP literal). */
  async readN(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.#end === this.#start && !(await this.#fill())) {
        throw new MailError(`The connection closed after ${got} of ${n} bytes.`, "closed");
      }
      const take = Math.min(n - got, this.#end - this.#start);
      out.set(this.#buf.subarray(this.#start, this.#start + take), got);
      this.#start += take;
      got += take;
    }
    return out;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf.subarray(0, this.#end));
      this.#buf = bigger;
    }
    const n = await this.#src.read(this.#buf.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    return true;
  }
}

/** Adapts a ReadableStream (tests feed chunks split at awkward places this way). */
export function streamSource(stream: ReadableStream<Uint8Array>): ByteSource {
  const reader = stream.getReader();
  let pending: Uint8Array | null = null;
  return {
    async read(p) {
      if (!pending || pending.length === 0) {
        const r = await reader.read();
        if (r.done) return null;
        pending = r.value;
      }
      const n = Math.min(p.length, pending.length);
      p.set(pending.subarray(0, n));
      pending = pending.subarray(n);
      return n;
    },
  };
}
