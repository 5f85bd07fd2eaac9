/**
 * Building IMAP command arguments safely (RFC 3501 §4, §9): strings become quoted strings when
 * every byte may be quoted, literals otherwise, so no user value can end a command early or start
 * a second one. Also UID sets, mailbox names (modified UTF-7) and SASL PLAIN.
 */
import { MailError } from "../errors.ts";

const te = new TextEncoder();

/** A piece of a command line: text sent as is, or a literal whose bytes follow a {n} announcement. */
export type CommandPart = string | { readonly literal: Uint8Array };

/**
 * RFC 3501 §4.3: a quoted string holds 7-bit text without CR, LF or NUL; `"` and `\` are escaped.
 * Anything else (8-bit, line breaks) needs a literal.
 */
export function canQuote(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b === 0 || b === 0x0a || b === 0x0d || b > 0x7e) return false;
  return true;
}

/** `"…"` with `\` and `"` escaped; the caller checked canQuote. */
export function quoteBytes(bytes: Uint8Array): string {
  let out = '"';
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c) out += "\\";
    out += String.fromCharCode(b);
  }
  return out + '"';
}

/** An astring/string argument: quoted when possible, else a literal (the client sends it in two steps). */
export function stringArg(value: string | Uint8Array): CommandPart {
  const bytes = typeof value === "string" ? te.encode(value) : value;
  return canQuote(bytes) ? quoteBytes(bytes) : { literal: bytes };
}

/**
 * How a server writes a string in a response: quoted when possible, else `{n}` CRLF and the bytes.
 * The fake test servers and the round-trip property tests use this; the client's own literals
 * go through ImapClient, which waits for the server's "+" (RFC 3501 §7.5).
 */
export function encodeResponseString(bytes: Uint8Array): Uint8Array {
  if (canQuote(bytes)) return te.encode(quoteBytes(bytes));
  const head = te.encode(`{${bytes.length}}\r\n`);
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  return out;
}

/** A UID set (RFC 3501 §9 sequence-set) with runs collapsed: 1:3,7,9:10. */
export function uidSet(uids: Iterable<number>): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  if (sorted.length === 0) throw new MailError("An empty UID set cannot be sent.", "protocol");
  const parts: string[] = [];
  let start = sorted[0];
  let prev = start;
  for (const u of sorted.slice(1).concat([NaN])) {
    if (u === prev + 1) {
      prev = u;
      continue;
    }
    parts.push(start === prev ? `${start}` : `${start}:${prev}`);
    start = prev = u;
  }
  return parts.join(",");
}

/** Splits UIDs into chunks so that no command line grows past what servers accept (~8 KiB, RFC 7162 §4). */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Mailbox names are modified UTF-7 in IMAP4rev1 (RFC 3501 §5.1.3): printable ASCII stands for
 * itself, "&" is "&-", anything else is "&" + base64 of UTF-16BE with "," for "/" + "-".
 */
export function encodeMailboxName(name: string): string {
  let out = "";
  let run: number[] = [];
  const flush = () => {
    if (run.length === 0) return;
    const bytes = new Uint8Array(run.length * 2);
    run.forEach((u, i) => {
      bytes[2 * i] = u >> 8;
      bytes[2 * i + 1] = u & 0xff;
    });
    out += "&" + base64(bytes).replace(/=+$/, "").replaceAll("/", ",") + "-";
    run = [];
  };
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) {
      flush();
      out += c === 0x26 ? "&-" : name[i];
    } else {
      run.push(c); // UTF-16 code units, surrogates included, as the RFC asks
    }
  }
  flush();
  return out;
}

/** The inverse of encodeMailboxName: a name as a server lists it, as the user reads it. */
export function decodeMailboxName(name: string): string {
  return name.replace(/&([^-]*)-/g, (_, b64: string) => {
    if (b64 === "") return "&";
    try {
      const bin = atob(b64.replaceAll(",", "/"));
      let out = "";
      for (let i = 0; i + 1 < bin.length; i += 2) {
        out += String.fromCharCode((bin.charCodeAt(i) << 8) | bin.charCodeAt(i + 1));
      }
      return out;
    } catch {
      return `&${b64}-`; // not modified UTF-7 after all: keep it as it came
    }
  });
}

export function base64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The command text with literals shown as {n} (for errors and logs; never used for credentials). */
export function displayParts(parts: readonly CommandPart[]): string {
  return parts.map((p) => typeof p === "string" ? p : `{${p.literal.length}}`).join("");
}
