/**
 * POP3 reply framing (RFC 1939 §3): one status line ("+OK …" / "-ERR …", or "+ …" during SASL,
 * RFC 5034 §4), optionally followed by a multi-line body ending in a line that is just ".", where a
 * body line starting with "." arrives with one more "." in front (byte-stuffing). Bytes in, values
 * out: no sockets here, so tests feed it streams split anywhere.
 */
import { MailError } from "../errors.ts";

/** What the reader needs from below: a line without its CRLF, or null at the end of the stream (LineReader fits). */
export interface LineSource {
  readLineBytes(): Promise<Uint8Array | null>;
}

export type StatusKind = "+OK" | "-ERR" | "+";

export interface Status {
  readonly kind: StatusKind;
  /** The text after the indicator, without a leading RFC 2449 response code. */
  readonly text: string;
  /** RFC 2449 §8 extended response code, e.g. "AUTH", "SYS/TEMP", "IN-USE"; upper-cased. */
  readonly code?: string;
  /** The whole line as received, for error messages. */
  readonly line: string;
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = new Uint8Array([CR, LF]);

/** Longest status line we show in an error message: a hostile server can send up to the line cap. */
const MAX_SHOWN = 200;

export function shown(text: string): string {
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

/** Parses one status line. Anything that is not +OK, -ERR or a SASL "+" continuation is a protocol error. */
export function parseStatus(line: Uint8Array | string): Status {
  const text = typeof line === "string" ? line : new TextDecoder().decode(line);
  let kind: StatusKind;
  let rest: string;
  // RFC 1939 §3: the indicator is case-sensitive and upper case.
  if (text === "+OK" || text.startsWith("+OK ")) {
    kind = "+OK";
    rest = text.slice(4);
  } else if (text === "-ERR" || text.startsWith("-ERR ")) {
    kind = "-ERR";
    rest = text.slice(5);
  } else if (text === "+" || text.startsWith("+ ")) {
    kind = "+";
    rest = text.slice(2);
  } else {
    throw new MailError(
      `The POP3 server sent "${shown(text)}" where a +OK or -ERR status line was expected.`,
      "protocol",
      { response: shown(text) },
    );
  }
  // RFC 2449 §8: "[CODE/SUB] text"; only meaningful after -ERR (and harmless after +OK).
  const m = kind === "+" ? null : /^\[([A-Za-z0-9/-]+)\]\s*/.exec(rest);
  if (m) return { kind, text: rest.slice(m[0].length), code: m[1].toUpperCase(), line: text };
  return { kind, text: rest, line: text };
}

export async function readStatus(src: LineSource): Promise<Status> {
  const line = await src.readLineBytes();
  if (line === null) {
    throw new MailError("The POP3 server closed the connection instead of answering.", "closed");
  }
  return parseStatus(line);
}

/**
 * One body line with its byte-stuffing removed (RFC 1939 §3), or null for the terminating ".".
 * The returned array shares memory with `line`.
 */
export function unstuffLine(line: Uint8Array): Uint8Array | null {
  if (line.length > 0 && line[0] === DOT) {
    if (line.length === 1) return null;
    return line.subarray(1);
  }
  return line;
}

export interface MultilineOptions {
  /** Reading more than this many bytes (after unstuffing, CRLFs counted) throws MailError "too_large". */
  maxBytes: number;
  /** Keep only the first `keepBytes`, read and drop the rest (TOP headers: a huge header need not stay in memory). */
  keepBytes?: number;
  /** Names the response in errors, e.g. "message 3". */
  what?: string;
}

export interface Multiline {
  /** The body, CRLF after every line, dot-unstuffed; at most `keepBytes` long. */
  readonly data: Uint8Array;
  /** Bytes in the whole body, including any that were dropped. */
  readonly size: number;
}

/**
 * Reads a multi-line body after its +OK status line, up to and including the terminating ".".
 * Lines are re-joined with CRLF, as RFC 1939 sends them; a bare LF from a broken server becomes CRLF.
 */
export async function readMultiline(src: LineSource, opts: MultilineOptions): Promise<Multiline> {
  const keep = Math.min(opts.keepBytes ?? opts.maxBytes, opts.maxBytes);
  const what = opts.what ?? "the response";
  const parts: Uint8Array[] = [];
  let kept = 0;
  let size = 0;
  for (;;) {
    const raw = await src.readLineBytes();
    if (raw === null) {
      throw new MailError(
        `The POP3 server closed the connection in the middle of ${what}, after ${size} bytes.`,
        "closed",
      );
    }
    const line = unstuffLine(raw);
    if (line === null) break;
    size += line.length + 2;
    if (size > opts.maxBytes) {
      throw new MailError(`${capitalize(what)} is over the ${opts.maxBytes}-byte cap.`, "too_large");
    }
    if (kept < keep) {
      const piece = concat([line, CRLF]);
      const take = Math.min(piece.length, keep - kept);
      parts.push(take === piece.length ? piece : piece.slice(0, take));
      kept += take;
    }
  }
  return { data: concat(parts), size };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A multi-line body's lines as text (CAPA, UIDL, LIST listings). */
export function bodyLines(body: Uint8Array): string[] {
  const text = new TextDecoder().decode(body);
  const lines = text.split("\r\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}
