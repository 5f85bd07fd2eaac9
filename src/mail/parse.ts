/**
 * Reading received mail, bounded: the few header fields mailmeet needs (RFC 5322 §2.2 fields,
 * RFC 2047 encoded words) and the plain-text body (RFC 2045 transfer encodings, RFC 2046
 * multipart), and nothing else.
 *
 * Our own mail is one text/plain part of a few KiB, so this is not a general MIME parser (a general
 * one met a mail nested 300 levels deep and took the whole process down, issue 11). Every step is a
 * linear scan of input already capped by the fetch size, a multipart walk stops at MAX_MIME_DEPTH
 * levels and MAX_MIME_PARTS parts, and a header field longer than MAX_FIELD_CHARS is cut: time and
 * memory are bounded by the size of the mail. Nothing here throws on hostile input; a mail whose
 * text cannot be found comes back with `problem` set, and the caller sets it aside.
 */

/** How much of a mail's start may be header. Ours carry a few hundred bytes; providers add a few KiB. */
export const MAX_HEADER_BYTES = 64 * 1024;
/** One unfolded header field at most; longer ones are cut (a marker still shows in the first part). */
export const MAX_FIELD_CHARS = 16 * 1024;
/** Multipart levels followed at most: ours has none; a forwarding provider may add one or two. */
export const MAX_MIME_DEPTH = 8;
/** Parts looked at in the whole tree at most. */
export const MAX_MIME_PARTS = 64;

export interface ParsedMail {
  subject: string;
  /** The Date header; undefined when missing or unreadable. */
  date?: Date;
  from?: string;
  /** To and Cc addresses, lower-cased. */
  recipients: string[];
  messageId?: string;
  /**
   * X-Mailmeet-Hops: how many hosts passed this mail on (a request chained upward). Not sealed: it
   * only bounds a chain (the sealed nonce is what stops loops), so a forged value costs nothing.
   */
  hops?: number;
  /** The first text/plain part, decoded ("" when there is none). */
  text: string;
  /** Why no text could be read (too deep, too many parts, no end of header): set the mail aside. */
  problem?: string;
}

export interface ParsedHeader {
  subject: string;
  date?: Date;
}

/** Header fields by lower-case name, first occurrence wins (RFC 5322 §3.6 allows one of each we read). */
type Fields = Map<string, string>;

const WANTED = new Set([
  "subject",
  "date",
  "from",
  "to",
  "cc",
  "message-id",
  "content-type",
  "content-transfer-encoding",
  "x-mailmeet-hops",
]);

/**
 * Subject and Date of a header block (or of a whole mail: reading stops at the blank line). The
 * mailboxes keep these for every listed message, so the subject is copied out of the decoded
 * block: a V8 substring keeps its whole parent alive, which held about 860 bytes per queued
 * request (8.6 MB for 10,000 on a maildir host, in a sampling heap profile; issue 12).
 */
export function parseHeader(raw: Uint8Array): ParsedHeader {
  const { fields } = readHeader(byteString(raw), 0, raw.length);
  const out: ParsedHeader = { subject: detached(decodeWords(fields.get("subject") ?? "")) };
  const date = dateOf(fields);
  if (date) out.date = date;
  return out;
}

/** The fields mailmeet uses and the plain-text body. Never throws. */
export function parseMail(raw: Uint8Array): ParsedMail {
  const s = byteString(raw);
  const head = readHeader(s, 0, s.length);
  const f = head.fields;
  const out: ParsedMail = {
    subject: decodeWords(f.get("subject") ?? ""),
    recipients: [...addresses(utf8Header(f.get("to") ?? "")), ...addresses(utf8Header(f.get("cc") ?? ""))],
    text: "",
  };
  const date = dateOf(f);
  if (date) out.date = date;
  const from = addresses(utf8Header(f.get("from") ?? ""))[0];
  if (from) out.from = from;
  const id = f.get("message-id")?.trim();
  if (id) out.messageId = id;
  const hops = f.get("x-mailmeet-hops")?.trim();
  if (hops && /^\d{1,3}$/.test(hops)) out.hops = Number(hops);
  if (head.bodyStart < 0) {
    out.problem = `its header does not end within the first ${MAX_HEADER_BYTES} bytes`;
    return out;
  }
  const found = findText(raw, s, f, head.bodyStart);
  if (typeof found === "string") out.text = found;
  else out.problem = found.problem;
  return out;
}

/**
 * A copy of `s` that shares no memory with the string it was cut from. Slicing a concatenation
 * flattens it into a new string first, so the result points into that copy (one byte longer than
 * `s`), not into the original parent.
 */
function detached(s: string): string {
  return (" " + s).slice(1);
}

function dateOf(fields: Fields): Date | undefined {
  const d = fields.get("date");
  if (!d) return undefined;
  const date = new Date(d.slice(0, 200));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * Bytes as a string of the same length, one char per byte, so offsets carry over to the bytes and
 * `charCodeAt(i) & 0xff` gives the byte back: x-user-defined (Encoding Standard §14.5) maps 0x00–0x7F
 * to ASCII and 0x80–0xFF to U+F780–U+F7FF.
 */
function byteString(raw: Uint8Array): string {
  return new TextDecoder("x-user-defined").decode(raw);
}

/**
 * The header block starting at `start`: the wanted fields, unfolded (RFC 5322 §2.2.3), and where the
 * body starts (-1 when no blank line comes within MAX_HEADER_BYTES and the input goes on).
 */
function readHeader(s: string, start: number, end: number): { fields: Fields; bodyStart: number } {
  const fields: Fields = new Map();
  const limit = Math.min(end, start + MAX_HEADER_BYTES);
  let pos = start;
  let name: string | undefined;
  let value = "";
  const flush = () => {
    if (name !== undefined && WANTED.has(name) && !fields.has(name)) fields.set(name, value.trim());
    name = undefined;
    value = "";
  };
  while (pos < limit) {
    let nl = s.indexOf("\n", pos);
    if (nl < 0 || nl >= end) nl = end;
    const lineEnd = nl > pos && s.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    if (lineEnd === pos) {
      flush();
      return { fields, bodyStart: Math.min(nl + 1, end) };
    }
    const first = s.charCodeAt(pos);
    if (first === 32 || first === 9) {
      // A folded continuation of the field before it.
      if (name !== undefined && value.length < MAX_FIELD_CHARS) {
        value += s.slice(pos, Math.min(lineEnd, pos + MAX_FIELD_CHARS - value.length));
      }
    } else {
      flush();
      const colon = s.indexOf(":", pos);
      if (colon > pos && colon < lineEnd && colon - pos <= 76) {
        name = s.slice(pos, colon).trim().toLowerCase();
        value = s.slice(colon + 1, Math.min(lineEnd, colon + 1 + MAX_FIELD_CHARS));
      }
      // else: not a field (an mbox "From " line, garbage): skipped
    }
    pos = nl + 1;
  }
  flush();
  // Header only (an IMAP HEADER.FIELDS answer, a POP3 TOP with no body) ends with the input.
  return { fields, bodyStart: pos >= end ? end : -1 };
}

/* ---------- RFC 2047 encoded words ---------- */

const ENCODED_WORD = /=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=/g;

/** Decodes encoded words; whitespace between two adjacent encoded words goes (RFC 2047 §6.2). */
export function decodeWords(value: string): string {
  if (!value.includes("=?")) return utf8Header(value);
  let out = "";
  let last = 0;
  let prevWasWord = false;
  for (const m of value.matchAll(ENCODED_WORD)) {
    const between = value.slice(last, m.index);
    if (!(prevWasWord && /^[ \t\r\n]*$/.test(between))) out += utf8Header(between);
    out += decodeWord(m[1], m[2], m[3]) ?? m[0];
    last = m.index + m[0].length;
    prevWasWord = true;
  }
  return out + utf8Header(value.slice(last));
}

function decodeWord(charset: string, encoding: string, text: string): string | undefined {
  let bytes: Uint8Array;
  if (encoding === "b" || encoding === "B") {
    bytes = base64Bytes(text);
  } else {
    const q = text.replaceAll("_", " ");
    bytes = quotedPrintable(stringBytes(q), false);
  }
  return decodeCharset(bytes, charset.split("*")[0]);
}

/** Raw 8-bit header text is UTF-8 where it decodes as such (RFC 6532), else taken as windows-1252. */
function utf8Header(s: string): string {
  // deno-lint-ignore no-control-regex
  if (!/[^\x00-\x7f]/.test(s)) return s;
  const bytes = stringBytes(s);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder("windows-1252").decode(bytes);
  }
}

/* ---------- addresses ---------- */

/**
 * The addr-specs in an address list (RFC 5322 §3.4): `a@b`, `Name <a@b>`, `"Doe, J" <a@b>`,
 * groups `team: a@b, c@d;`, comments. One linear pass; lower-cased.
 */
export function addresses(value: string): string[] {
  const out: string[] = [];
  let bare = "";
  let angle: string | undefined;
  let inAngle = false;
  let depth = 0;
  let quoted = false;
  const end = () => {
    const a = (angle ?? bare).trim().toLowerCase();
    if (a.includes("@") && a.length <= 254) out.push(a);
    bare = "";
    angle = undefined;
  };
  for (let i = 0; i < value.length && out.length < 1000; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === "\\") i++;
      else if (ch === '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (ch === "\\") i++;
      else if (ch === "(") depth++;
      else if (ch === ")") depth--;
      continue;
    }
    if (inAngle) {
      if (ch === ">") inAngle = false;
      else angle += ch;
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === "(") depth = 1;
    else if (ch === "<") {
      inAngle = true;
      angle = "";
    } else if (ch === "," || ch === ";") end();
    else if (ch === ":") bare = ""; // a group's display name
    else bare += ch;
  }
  end();
  return out;
}

/* ---------- the body ---------- */

interface ContentType {
  type: string;
  params: Map<string, string>;
}

/** `type/subtype; name=value; name="quoted"` (RFC 2045 §5.1); defaults to text/plain. */
function contentType(value: string | undefined): ContentType {
  const params = new Map<string, string>();
  if (!value) return { type: "text/plain", params };
  const semi = value.indexOf(";");
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase() || "text/plain";
  let i = semi < 0 ? value.length : semi + 1;
  while (i < value.length && params.size < 32) {
    const eq = value.indexOf("=", i);
    if (eq < 0) break;
    const name = value.slice(i, eq).replace(/[;\s]/g, "").toLowerCase();
    let j = eq + 1;
    while (value[j] === " " || value[j] === "\t") j++;
    let v = "";
    if (value[j] === '"') {
      j++;
      while (j < value.length && value[j] !== '"') {
        if (value[j] === "\\") j++;
        v += value[j] ?? "";
        j++;
      }
      j++;
    } else {
      const stop = value.indexOf(";", j);
      v = value.slice(j, stop < 0 ? value.length : stop).trim();
      j = stop < 0 ? value.length : stop;
    }
    if (name && !params.has(name)) params.set(name, v);
    const next = value.indexOf(";", j);
    if (next < 0) break;
    i = next + 1;
  }
  return { type, params };
}

/**
 * The first text/plain part, depth first in document order, decoded; or why it could not be found.
 * The walk keeps its own stack (no recursion) and counts levels and parts.
 */
function findText(
  raw: Uint8Array,
  s: string,
  top: Fields,
  bodyStart: number,
): string | { problem: string } {
  type Part = { fields: Fields; start: number; end: number; depth: number };
  const stack: Part[] = [{ fields: top, start: bodyStart, end: s.length, depth: 0 }];
  let parts = 0;
  let fallback: string | undefined;
  while (stack.length > 0) {
    const part = stack.pop()!;
    if (++parts > MAX_MIME_PARTS) return { problem: `it has more than ${MAX_MIME_PARTS} MIME parts` };
    const ct = contentType(part.fields.get("content-type"));
    if (ct.type.startsWith("multipart/")) {
      if (part.depth >= MAX_MIME_DEPTH) {
        return { problem: `its MIME parts are nested deeper than ${MAX_MIME_DEPTH} levels` };
      }
      const boundary = ct.params.get("boundary");
      if (!boundary || boundary.length > 200) continue;
      const children = splitMultipart(s, part.start, part.end, boundary, MAX_MIME_PARTS - parts + 1);
      // Pushed in reverse: the first child is looked at first.
      for (let k = children.length - 1; k >= 0; k--) {
        const c = children[k];
        const h = readHeader(s, c.start, c.end);
        if (h.bodyStart < 0) continue;
        stack.push({ fields: h.fields, start: h.bodyStart, end: c.end, depth: part.depth + 1 });
      }
      continue;
    }
    if (!ct.type.startsWith("text/")) continue;
    const text = decodeCharset(
      decodeTransfer(raw.subarray(part.start, part.end), part.fields.get("content-transfer-encoding")),
      ct.params.get("charset") ?? "utf-8",
    ) ?? "";
    if (ct.type === "text/plain") return text;
    fallback ??= text;
  }
  return fallback ?? "";
}

/** The parts between `--boundary` lines (RFC 2046 §5.1.1), at most `max`. */
function splitMultipart(
  s: string,
  start: number,
  end: number,
  boundary: string,
  max: number,
): { start: number; end: number }[] {
  const delim = `--${boundary}`;
  const out: { start: number; end: number }[] = [];
  let partStart = -1;
  let pos = start;
  while (pos < end && out.length < max) {
    const at = s.indexOf(delim, pos);
    if (at < 0 || at >= end) break;
    // Only at the start of a line.
    if (at !== start && s.charCodeAt(at - 1) !== 10) {
      pos = at + delim.length;
      continue;
    }
    if (partStart >= 0) {
      // The CRLF before the delimiter belongs to the delimiter.
      let e = at - 1;
      if (e > partStart && s.charCodeAt(e - 1) === 13) e--;
      out.push({ start: partStart, end: Math.max(partStart, e) });
    }
    const closing = s.startsWith("--", at + delim.length);
    const nl = s.indexOf("\n", at + delim.length);
    if (closing || nl < 0 || nl >= end) return out;
    partStart = nl + 1;
    pos = partStart;
  }
  if (partStart >= 0 && out.length < max) out.push({ start: partStart, end }); // no closing delimiter
  return out;
}

function decodeTransfer(bytes: Uint8Array, cte: string | undefined): Uint8Array {
  const enc = (cte ?? "7bit").trim().toLowerCase();
  if (enc === "base64") return base64Bytes(byteString(bytes));
  if (enc === "quoted-printable") return quotedPrintable(bytes, true);
  return bytes;
}

/** RFC 2045 §6.7 (and RFC 2047 §4.2 Q without soft breaks), one pass; malformed escapes stay as they are. */
function quotedPrintable(bytes: Uint8Array, softBreaks: boolean): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b !== 0x3d) {
      out[n++] = b;
      continue;
    }
    if (softBreaks && bytes[i + 1] === 0x0a) {
      i += 1;
      continue;
    }
    if (softBreaks && bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) {
      i += 2;
      continue;
    }
    const hi = hex(bytes[i + 1]);
    const lo = hex(bytes[i + 2]);
    if (hi >= 0 && lo >= 0) {
      out[n++] = hi * 16 + lo;
      i += 2;
    } else out[n++] = b;
  }
  return out.subarray(0, n);
}

function hex(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

/** Base64 with line breaks and stray characters skipped, a missing padding tolerated. */
function base64Bytes(text: string): Uint8Array {
  const clean = text.replace(/[^A-Za-z0-9+/]/g, "");
  try {
    return Uint8Array.fromBase64(clean.slice(0, clean.length - (clean.length % 4 === 1 ? 1 : 0)), {
      lastChunkHandling: "loose",
    });
  } catch {
    return new Uint8Array();
  }
}

/** The bytes of a string made by byteString() (or of plain ASCII). */
function stringBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

function decodeCharset(bytes: Uint8Array, charset: string): string | undefined {
  try {
    return new TextDecoder(charset.trim().toLowerCase() || "utf-8").decode(bytes);
  } catch {
    // An unknown charset: UTF-8 is the best guess for anything a modern client wrote.
    return new TextDecoder().decode(bytes);
  }
}
