/**
 * Telling which mail protocol a server speaks from its first line, so a URL that names the wrong
 * port (imaps:// on the SMTP port, pop3:// on the IMAP port) fails with one sentence that says so,
 * instead of a parser's complaint about the other protocol's greeting.
 */
import { MailError } from "./errors.ts";

export type MailProtocol = "IMAP" | "POP3" | "SMTP";

/** Where each protocol usually is, for the sentence. */
const USUAL: Record<MailProtocol, string> = {
  IMAP: "IMAP is usually imaps:// on port 993 or imap:// on 143",
  POP3: "POP3 is usually pop3s:// on port 995 or pop3:// on 110",
  SMTP: "sending is usually smtps:// on port 465 or smtp:// on 587",
};

/**
 * The protocol a greeting line belongs to: "* OK"/"* PREAUTH"/"* BYE" (RFC 3501 §7.1), "+OK"/"-ERR"
 * (RFC 1939 §4), "220"/"554" with a space or dash (RFC 5321 §4.2, §3.1). Undefined for anything else.
 */
export function greetingProtocol(line: string): MailProtocol | undefined {
  if (/^\* (OK|PREAUTH|BYE)\b/i.test(line)) return "IMAP";
  if (/^(\+OK|-ERR)\b/.test(line)) return "POP3";
  if (/^(220|421|554)([ -]|$)/.test(line)) return "SMTP";
  return undefined;
}

/**
 * A MailError when `line`, the first thing `where` said, is another protocol's greeting; undefined
 * when it may well be the expected one (the caller's own parser then decides).
 */
export function wrongProtocol(where: string, expected: MailProtocol, line: string): MailError | undefined {
  const found = greetingProtocol(line.trim());
  if (found === undefined || found === expected) return undefined;
  return new MailError(
    `${where} is ${found === "POP3" ? "a" : "an"} ${found} server, not ${expected}: check the port (${
      USUAL[expected]
    }).`,
    "config",
    { response: line.slice(0, 120) },
  );
}

/** Ports that expect TLS from the first byte (RFC 8314 §3.3, §7.3). */
const IMPLICIT_TLS_PORTS = new Set([465, 993, 995]);

/**
 * The half sentence to add when a clear-text client got no greeting at all: a port that expects
 * TLS from the start waits for our TLS hello, as we wait for its greeting.
 */
export function silentGreetingHint(port: number, implicitTls: boolean): string {
  return !implicitTls && IMPLICIT_TLS_PORTS.has(port)
    ? `; port ${port} usually expects TLS from the start, so use smtps://, imaps:// or pop3s:// for it`
    : "";
}
