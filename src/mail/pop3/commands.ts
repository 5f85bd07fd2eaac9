/** Small POP3 command helpers: building command lines safely and reading the listings they return. */
import { MailError } from "../errors.ts";
import { shown } from "./reply.ts";

/** What CAPA (RFC 2449 §5) told us. A server without CAPA is treated as having none of these. */
export interface Capabilities {
  readonly stls: boolean;
  readonly user: boolean;
  readonly top: boolean;
  readonly uidl: boolean;
  /** SASL mechanisms, upper-cased (RFC 2449 §6.3). */
  readonly sasl: ReadonlySet<string>;
  /**
   * AUTH-RESP-CODE (RFC 3206 §5): every login failure caused by the credentials carries [AUTH], so
   * one without it is the server's trouble (Dovecot shutting down says "-ERR Shutting down").
   */
  readonly authRespCode: boolean;
}

export const NO_CAPABILITIES: Capabilities = {
  stls: false,
  user: false,
  top: false,
  uidl: false,
  sasl: new Set(),
  authRespCode: false,
};

export function parseCapa(lines: readonly string[]): Capabilities {
  let stls = false, user = false, top = false, uidl = false, authRespCode = false;
  const sasl = new Set<string>();
  for (const line of lines) {
    const [name = "", ...args] = line.trim().split(/\s+/);
    switch (name.toUpperCase()) {
      case "STLS":
        stls = true;
        break;
      case "USER":
        user = true;
        break;
      case "TOP":
        top = true;
        break;
      case "UIDL":
        uidl = true;
        break;
      case "SASL":
        for (const m of args) sasl.add(m.toUpperCase());
        break;
      case "AUTH-RESP-CODE":
        authRespCode = true;
        break;
    }
  }
  return { stls, user, top, uidl, sasl, authRespCode };
}

/** The "n size" lines of LIST (RFC 1939 §5). */
export function parseList(lines: readonly string[]): Map<number, number> {
  const sizes = new Map<number, number>();
  for (const line of lines) {
    const m = /^(\d+) (\d+)(?: .*)?$/.exec(line);
    if (!m) throw listingError("LIST", line);
    sizes.set(Number(m[1]), Number(m[2]));
  }
  return sizes;
}

/** The "n uid" lines of UIDL (RFC 1939 §7: a uid is 1–70 characters in 0x21–0x7E). */
export function parseUidl(lines: readonly string[]): Map<number, string> {
  const uids = new Map<number, string>();
  for (const line of lines) {
    const m = /^(\d+) ([\x21-\x7e]{1,70})$/.exec(line);
    if (!m) throw listingError("UIDL", line);
    uids.set(Number(m[1]), m[2]);
  }
  return uids;
}

function listingError(command: string, line: string): MailError {
  return new MailError(
    `The POP3 server sent "${shown(line)}" in its ${command} listing, which is not "number value".`,
    "protocol",
    { command, response: shown(line) },
  );
}

/** An argument that ends up on a command line must not be able to start a second command. */
export function checkArgument(value: string, what: string): void {
  if (/[\r\n\0]/.test(value)) {
    throw new MailError(`The ${what} contains a line break or NUL byte, which POP3 cannot send.`, "config");
  }
}
