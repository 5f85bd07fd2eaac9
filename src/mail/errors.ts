/** Typed mail-layer errors: `code` says what kind of failure it was, the message says what to try. */

export type MailErrorCode =
  | "config" // the account URL or an option is wrong; retrying will not help
  | "connect" // could not open a TCP connection
  | "tls" // TLS handshake or certificate check failed
  | "auth" // the server refused the login
  | "protocol" // the server said something we cannot parse, or answered NO/BAD
  | "timeout" // the server did not answer in time
  | "closed" // the connection dropped
  | "too_large" // a message exceeded the size cap
  | "not_found" // the message is gone
  | "rejected" // the server refused a message permanently (5xx)
  | "temporary" // the server refused for now (4xx)
  | "rate_limited" // the provider says this account sends too much (waiting is the only cure)
  | "budget"; // our own --mail-budget holds this mail back

/**
 * Finer than `code` where the remedy differs (doctor picks its advice from it, never from the
 * message text).
 */
export type MailErrorReason =
  | "untrusted_certificate" // the TLS library refused the server's certificate
  | "no_starttls" // the server does not offer STARTTLS / STLS (RFC 3207, RFC 2595 §4)
  | "needs_encryption" // the server wants TLS before it takes a login
  | "starttls_refused"; // the server offers STARTTLS / STLS but refused it when asked (shutting down, busy)

export interface MailErrorOptions {
  command?: string;
  response?: string;
  reason?: MailErrorReason;
  cause?: unknown;
}

export class MailError extends Error {
  readonly command?: string;
  readonly response?: string;
  readonly reason?: MailErrorReason;
  constructor(message: string, readonly code: MailErrorCode, options: MailErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "MailError";
    this.command = options.command;
    this.response = options.response;
    this.reason = options.reason;
  }
}

const RETRIABLE: ReadonlySet<MailErrorCode> = new Set(["connect", "timeout", "closed", "temporary"]);

/**
 * A server that offered STARTTLS/STLS earlier in this run and does not now is most likely
 * restarting (Dovecot answers CAPA before its TLS settings are loaded): a temporary failure, tried
 * again later, still never in clear. The first connection of a run keeps the configuration error.
 */
export function tlsOfferGone(err: unknown, offeredBefore: boolean): unknown {
  if (!offeredBefore || !(err instanceof MailError) || err.reason !== "no_starttls") return err;
  return new MailError(
    `${
      err.message.replace(/; not logging in\..*$/, "")
    }, though it did earlier (restarting?); not logging in now, trying again later.`,
    "temporary",
    { cause: err, command: err.command, reason: err.reason },
  );
}

/**
 * The first connection of a run found no STARTTLS/STLS offer. A server restarting can leave it
 * out for a moment (Dovecot shutting down), so it is looked for once more after the usual pause
 * before it is taken as the server's setting; still never logging in in clear text.
 */
export function tlsOfferMissingOnce(err: unknown): unknown {
  if (!(err instanceof MailError) || err.reason !== "no_starttls") return err;
  return new MailError(
    `${
      err.message.replace(/, so the password.*$/, "")
    } right now; looking once more before taking it as the server's setting.`,
    "temporary",
    { cause: err, command: err.command, reason: err.reason },
  );
}

/** True for failures that a reconnect or a later retry may cure. */
export function isRetriableError(err: unknown): boolean {
  return err instanceof MailError && RETRIABLE.has(err.code);
}

/** Turns what Deno throws on connect/TLS into a MailError naming the server. */
export function connectError(where: string, err: unknown): MailError {
  if (err instanceof MailError) return err;
  const text = err instanceof Error ? err.message : String(err);
  if (/InvalidContentType|corrupt message|wrong version number|record overflow/i.test(text)) {
    // A TLS handshake answered by a server speaking plain text (imaps:// to the STARTTLS port).
    // The library's own words stay in `cause` (--debug); the user gets what to change.
    return new MailError(
      `Cannot open a secure connection to ${where}: the server does not speak TLS from the start on this port; ` +
        `use imap://, pop3:// or smtp:// (STARTTLS) for it, or the TLS port (993, 995, 465).`,
      "tls",
      { cause: err },
    );
  }
  if (/certificate|UnknownIssuer|tls|handshake|NotValidForName|InvalidCertificate/i.test(text)) {
    return new MailError(
      `Cannot open a secure connection to ${where}: the server's certificate is not trusted (${
        certificateProblem(text)
      }); ` +
        `if it uses a private CA, pass it with --tls-ca FILE.`,
      "tls",
      { cause: err, reason: "untrusted_certificate" },
    );
  }
  if (err instanceof Deno.errors.ConnectionRefused) {
    return new MailError(
      `Cannot connect to ${where}: the connection was refused. Check the host and port.`,
      "connect",
      {
        cause: err,
      },
    );
  }
  if (err instanceof Deno.errors.TimedOut) {
    return new MailError(`Cannot connect to ${where}: the server did not answer in time.`, "timeout", {
      cause: err,
    });
  }
  return new MailError(`Cannot connect to ${where}: ${text}.`, "connect", { cause: err });
}

/** Why a certificate is not trusted, in words, from the TLS library's error text. */
export function certificateProblem(text: string): string {
  if (/NotValidForName|hostname|altnames|not valid for/i.test(text)) {
    return "it is made out for another name than the one in the URL";
  }
  if (/Expired|has expired|not yet valid|NotValidYet/i.test(text)) {
    return "it has expired or is not valid yet";
  }
  if (/UnknownIssuer|self.signed|unable to (get|verify)|issuer/i.test(text)) {
    return "it is signed by an authority this machine does not know";
  }
  if (/Revoked/i.test(text)) return "it was revoked";
  return "the TLS library refused it";
}
