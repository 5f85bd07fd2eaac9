/**
 * Turns one framed response into a small AST (RFC 3501 §7, grammar in §9):
 * - `+ text`                           → continuation request
 * - `TAG OK|NO|BAD [code] text`        → tagged status (completes a command)
 * - `* OK|NO|BAD|BYE|PREAUTH [code] text` → untagged status
 * - `* n EXISTS|RECENT|EXPUNGE|FETCH …`, `* NAME values…` → untagged data
 * Values are atoms, strings (quoted or literal, kept as bytes), NIL (null) and nested lists.
 * Anything malformed is a MailError "protocol": after it the stream position is unknown.
 */
import { MailError } from "../errors.ts";
import type { RawResponse } from "./framing.ts";

export interface ImapAtom {
  readonly type: "atom";
  readonly value: string;
}
export interface ImapString {
  readonly type: "string";
  readonly bytes: Uint8Array;
  readonly literal: boolean;
}
export interface ImapList {
  readonly type: "list";
  readonly items: readonly ImapValue[];
}
/** null is NIL. */
export type ImapValue = ImapAtom | ImapString | ImapList | null;

/** A response code in brackets (RFC 3501 §7.1): name upper-cased, the rest as text. */
export interface RespCode {
  readonly name: string;
  readonly args: string;
}

export type StatusWord = "OK" | "NO" | "BAD" | "BYE" | "PREAUTH";

export interface StatusResponse {
  readonly kind: "status";
  /** null for an untagged (`*`) status. */
  readonly tag: string | null;
  readonly status: StatusWord;
  readonly code?: RespCode;
  readonly text: string;
}

export interface DataResponse {
  readonly kind: "data";
  /** Upper-cased: CAPABILITY, FLAGS, SEARCH, EXISTS, RECENT, EXPUNGE, FETCH, LIST, … */
  readonly name: string;
  /** The message number or count before EXISTS, RECENT, EXPUNGE, FETCH. */
  readonly number?: number;
  readonly values: readonly ImapValue[];
}

export interface ContinuationResponse {
  readonly kind: "continue";
  readonly text: string;
}

export type ImapResponse = StatusResponse | DataResponse | ContinuationResponse;

const STATUS_WORDS = new Set(["OK", "NO", "BAD", "BYE", "PREAUTH"]);
/** Data whose shape we rely on: a syntax error in these is a protocol error, not noise. */
const NUMBERED = new Set(["EXISTS", "RECENT", "EXPUNGE", "FETCH"]);
const MAX_DEPTH = 64;

const SP = 0x20, LPAREN = 0x28, RPAREN = 0x29, DQUOTE = 0x22, BACKSLASH = 0x5c, LBRACE = 0x7b;
const LBRACKET = 0x5b, RBRACKET = 0x5d, TILDE = 0x7e;

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: false });

function protocolError(what: string, raw: RawResponse): MailError {
  return new MailError(
    `The IMAP server sent a malformed response (${what}): "${preview(raw)}".`,
    "protocol",
    {
      response: preview(raw),
    },
  );
}

/** The first line, printable and short, for error messages. */
export function preview(raw: RawResponse): string {
  const first = latin1.decode(raw.lines[0]?.subarray(0, 120) ?? new Uint8Array());
  return first.replace(/[^\x20-\x7e]/g, "?") + ((raw.lines[0]?.length ?? 0) > 120 ? "…" : "");
}

/** A read position that walks lines and steps over each literal at its line's end. */
class Cursor {
  line = 0;
  pos = 0;
  constructor(readonly raw: RawResponse) {}

  get bytes(): Uint8Array {
    return this.raw.lines[this.line];
  }
  peek(): number {
    return this.pos < this.bytes.length ? this.bytes[this.pos] : -1;
  }
  /** At the end of the last line: nothing left in the response. */
  done(): boolean {
    return this.line === this.raw.lines.length - 1 && this.pos >= this.bytes.length;
  }
  fail(what: string): never {
    throw protocolError(what, this.raw);
  }
  sp(): void {
    if (this.peek() !== SP) this.fail("expected a space");
    this.pos++;
  }
  /** The rest of the current line as text (resp-text); later lines, if any, are ignored. */
  rest(): string {
    const text = utf8.decode(this.bytes.subarray(this.pos));
    this.line = this.raw.lines.length - 1;
    this.pos = this.bytes.length;
    return text;
  }

  /**
   * An atom, leniently: any run of bytes that is not a space, paren, quote, brace or control,
   * with a bracketed section (BODY[HEADER.FIELDS (SUBJECT DATE)]) and a partial <n> absorbed.
   * `stopAtBracket` ends it at "]" (inside a response code).
   */
  atom(stopAtBracket = false): string {
    const b = this.bytes;
    const start = this.pos;
    while (this.pos < b.length) {
      const c = b[this.pos];
      if (c === LBRACKET && !stopAtBracket) {
        const close = b.indexOf(RBRACKET, this.pos);
        if (close < 0) this.fail("unclosed [");
        this.pos = close + 1;
        continue;
      }
      if (
        c <= SP || c === 0x7f || c === LPAREN || c === RPAREN || c === DQUOTE || c === LBRACE ||
        (c === RBRACKET && stopAtBracket)
      ) break;
      this.pos++;
    }
    if (this.pos === start) this.fail("expected an atom");
    return latin1.decode(b.subarray(start, this.pos));
  }

  value(depth = 0): ImapValue {
    const c = this.peek();
    if (c === LPAREN) return this.list(depth);
    if (c === DQUOTE) return this.quoted();
    if (c === LBRACE || (c === TILDE && this.bytes[this.pos + 1] === LBRACE)) return this.literal();
    const a = this.atom();
    return a.toUpperCase() === "NIL" ? null : { type: "atom", value: a };
  }

  list(depth: number): ImapList {
    if (depth >= MAX_DEPTH) this.fail("lists nested too deep");
    this.pos++; // (
    const items: ImapValue[] = [];
    for (;;) {
      while (this.peek() === SP) this.pos++;
      const c = this.peek();
      if (c === RPAREN) {
        this.pos++;
        return { type: "list", items };
      }
      if (c === -1) this.fail("unclosed (");
      items.push(this.value(depth + 1));
    }
  }

  quoted(): ImapString {
    const b = this.bytes;
    this.pos++; // "
    const out: number[] = [];
    while (this.pos < b.length) {
      const c = b[this.pos++];
      if (c === DQUOTE) return { type: "string", bytes: Uint8Array.from(out), literal: false };
      if (c === BACKSLASH) {
        if (this.pos >= b.length) break;
        out.push(b[this.pos++]);
      } else {
        out.push(c);
      }
    }
    return this.fail("unterminated quoted string");
  }

  literal(): ImapString {
    if (this.peek() === TILDE) this.pos++;
    const b = this.bytes;
    const close = b.indexOf(0x7d, this.pos);
    // The framer only read a literal when the announcement ends the line; one mid-line is garbage.
    if (close !== b.length - 1) this.fail("a literal announcement that does not end the line");
    if (this.line >= this.raw.literals.length) this.fail("a literal without its bytes");
    const bytes = this.raw.literals[this.line];
    this.line++;
    this.pos = 0;
    return { type: "string", bytes, literal: true };
  }
}

function number(text: string, raw: RawResponse): number {
  if (!/^\d{1,15}$/.test(text)) throw protocolError(`"${text.slice(0, 20)}" is not a number`, raw);
  return Number(text);
}

export function parseResponse(raw: RawResponse): ImapResponse {
  if (raw.lines.length === 0) throw protocolError("empty", raw);
  const cur = new Cursor(raw);
  if (cur.peek() === 0x2b) { // +
    cur.pos++;
    if (cur.peek() === SP) cur.pos++;
    return { kind: "continue", text: cur.rest() };
  }
  const tag = cur.atom(true);
  if (tag !== "*") {
    if (cur.done()) cur.fail("a tag without a status");
    cur.sp();
    const word = cur.atom(true).toUpperCase();
    if (word !== "OK" && word !== "NO" && word !== "BAD") cur.fail(`tagged ${word.slice(0, 20)}`);
    return statusTail(cur, tag, word as StatusWord);
  }
  cur.sp();
  const first = cur.atom(true);
  const upper = first.toUpperCase();
  if (STATUS_WORDS.has(upper)) return statusTail(cur, null, upper as StatusWord);
  let num: number | undefined;
  let name = upper;
  if (/^\d+$/.test(first)) {
    num = number(first, raw);
    cur.sp();
    name = cur.atom(true).toUpperCase();
    if (!NUMBERED.has(name)) cur.fail(`unknown message data ${name.slice(0, 20)}`);
  }
  const values: ImapValue[] = [];
  try {
    while (!cur.done()) {
      if (cur.peek() === -1) {
        // Only a literal may end a line in the middle of a response; Cursor.literal stepped over it.
        cur.fail("an unexpected line break");
      }
      cur.sp();
      while (cur.peek() === SP) cur.pos++; // some servers pad with double spaces
      if (cur.peek() === -1 && cur.done()) break;
      values.push(cur.value());
    }
  } catch (err) {
    // Unknown extensions may use syntax we do not model; only the data we rely on must parse.
    if (num !== undefined || name === "SEARCH" || name === "CAPABILITY") throw err;
    return { kind: "data", name, values: [] };
  }
  if (name === "FETCH" && (values.length !== 1 || values[0]?.type !== "list")) {
    cur.fail("FETCH without a parenthesized list");
  }
  return num === undefined ? { kind: "data", name, values } : { kind: "data", name, number: num, values };
}

function statusTail(cur: Cursor, tag: string | null, status: StatusWord): StatusResponse {
  // RFC 3501 §9 needs SP text, but "* OK" alone is common enough to accept.
  if (cur.peek() === SP) cur.pos++;
  let code: RespCode | undefined;
  if (cur.peek() === LBRACKET) {
    const b = cur.bytes;
    const close = b.indexOf(RBRACKET, cur.pos);
    if (close < 0) cur.fail("unclosed response code");
    const inner = utf8.decode(b.subarray(cur.pos + 1, close));
    const sp = inner.indexOf(" ");
    code = {
      name: (sp < 0 ? inner : inner.slice(0, sp)).toUpperCase(),
      args: sp < 0 ? "" : inner.slice(sp + 1),
    };
    cur.pos = close + 1;
    if (cur.peek() === SP) cur.pos++;
  }
  const text = cur.rest();
  return code ? { kind: "status", tag, status, code, text } : { kind: "status", tag, status, text };
}

/* ---------- helpers over values ---------- */

export function atomValue(v: ImapValue | undefined): string | undefined {
  return v && v.type === "atom" ? v.value : undefined;
}

/** An atom that is a number (UID, size, count). */
export function numberValue(v: ImapValue | undefined): number | undefined {
  const a = atomValue(v);
  return a !== undefined && /^\d{1,15}$/.test(a) ? Number(a) : undefined;
}

/** Bytes of a string (quoted or literal); also an atom's text, as some servers send atoms for strings. */
export function bytesValue(v: ImapValue | undefined): Uint8Array | undefined {
  if (!v) return undefined;
  if (v.type === "string") return v.bytes;
  if (v.type === "atom") return new TextEncoder().encode(v.value);
  return undefined;
}

export function textValue(v: ImapValue | undefined): string | undefined {
  const b = bytesValue(v);
  return b ? utf8.decode(b) : undefined;
}

/**
 * The attributes of a FETCH response (RFC 3501 §7.4.2) by upper-cased name; section names keep
 * their brackets (BODY[], BODY[HEADER.FIELDS (SUBJECT DATE)]) with any <origin> removed.
 */
export function fetchAttributes(resp: DataResponse): Map<string, ImapValue> {
  const out = new Map<string, ImapValue>();
  const list = resp.values[0];
  if (!list || list.type !== "list") return out;
  const items = list.items;
  for (let i = 0; i + 1 < items.length; i += 2) {
    const key = atomValue(items[i]);
    if (key === undefined) continue;
    out.set(key.toUpperCase().replace(/<\d+>$/, ""), items[i + 1]);
  }
  return out;
}

/** Capabilities, upper-cased, from `* CAPABILITY …` or a `[CAPABILITY …]` code. */
export function capabilityNames(source: DataResponse | RespCode): Set<string> {
  const words = "values" in source
    ? source.values.map((v) => atomValue(v) ?? "").filter(Boolean)
    : source.args.split(/\s+/).filter(Boolean);
  return new Set(words.map((w) => w.toUpperCase()));
}
