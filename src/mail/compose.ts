/**
 * Composing the one kind of mail mailmeet sends most: plain 7-bit text (a sealed block is base64,
 * the note is ASCII) with an ASCII subject. RFC 5322 needs nothing more than the header lines below
 * and CRLF line ends for it (RFC 2045 §6.2: 7bit needs no transfer encoding), and writing them
 * costs microseconds where a general composer's stream pipeline costs most of a millisecond — per
 * reply, on a busy host (issue 12). Anything else (non-ASCII, long lines, extra headers) returns
 * undefined, and the caller composes with nodemailer.
 */
import { isMailAddress } from "./address.ts";

export interface PlainMail {
  from: string;
  to: readonly string[];
  subject: string;
  text: string;
  date?: Date;
}

/** RFC 5322 §2.1.1: at most 998 characters on a line. */
const MAX_LINE = 998;
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Printable ASCII and tab only: no header injection, nothing to encode. */
const PLAIN_FIELD = /^[\x20-\x7e\t]*$/;
/** 7-bit text without NUL or bare CR. */
// deno-lint-ignore no-control-regex
const PLAIN_TEXT = /^[\x01-\x0c\x0e-\x7f]*$/;
/**
 * `(`, `)`, `:` and `\` are specials outside a quoted string (RFC 5322 §3.2.3): written bare into a
 * header they would start a comment, a group or a quoted pair, so such an address is left to the
 * general composer, which quotes it.
 */
const HEADER_SPECIALS = /[():\\]/;
const plainAddress = (a: string) => isMailAddress(a) && !HEADER_SPECIALS.test(a);

/** RFC 5322 §3.3 date-time in UTC: "Fri, 27 Nov 2026 03:56:01 +0000". */
export function rfc5322Date(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** The raw message, or undefined when the mail needs a general composer. */
export function composePlain(mail: PlainMail): { raw: Uint8Array; messageId: string } | undefined {
  if (!plainAddress(mail.from) || mail.to.length === 0 || !mail.to.every(plainAddress)) {
    return undefined;
  }
  const text = mail.text.replace(/\r\n/g, "\n");
  if (!PLAIN_FIELD.test(mail.subject) || mail.subject.length > 900 || !PLAIN_TEXT.test(text)) {
    return undefined;
  }
  const lines = text.split("\n");
  if (lines.some((l) => l.length > MAX_LINE)) return undefined;
  const messageId = `<${crypto.randomUUID()}@${mail.from.slice(mail.from.lastIndexOf("@") + 1)}>`;
  const head = [
    `From: ${mail.from}`,
    `To: ${mail.to.join(", ")}`,
    `Subject: ${mail.subject}`,
    `Message-ID: ${messageId}`,
    `Date: ${rfc5322Date(mail.date ?? new Date())}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
    "Content-Transfer-Encoding: 7bit",
  ];
  if (head.some((h) => h.length > MAX_LINE)) return undefined;
  if (lines.at(-1) === "") lines.pop();
  const raw = `${head.join("\r\n")}\r\n\r\n${lines.join("\r\n")}\r\n`;
  return { raw: new TextEncoder().encode(raw), messageId };
}
