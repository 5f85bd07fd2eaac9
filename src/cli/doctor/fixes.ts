/**
 * What doctor tells the user to do when a step failed, chosen from the error's type, `code` and
 * `reason` (src/mail/errors.ts, src/oauth/errors.ts, src/net/portmap.ts) — never from its message,
 * whose words are for people and may change.
 */
import type { Account } from "../../mail/account.ts";
import { MailError } from "../../mail/errors.ts";
import type { PortMapOutcome } from "../../net/portmap.ts";
import { OAuthError } from "../../oauth/errors.ts";
import { providerFor } from "../providers.ts";

/** A TLS step (or the connection under it) failed; `ports` names the usual ports for this side. */
export function tlsFix(account: Account, e: MailError, ports: string): string {
  if (e.reason === "untrusted_certificate") {
    return "If the server uses a private CA, pass its certificate with --tls-ca FILE; otherwise check that the server name in the URL is the one in its certificate (no IP address, no alias).";
  }
  if (e.reason === "no_starttls") {
    return `Use the TLS port instead (${
      account.scheme.startsWith("smtp")
        ? "smtps:// on 465"
        : account.scheme.startsWith("imap")
        ? "imaps:// on 993"
        : "pop3s:// on 995"
    }); ?tls=none sends the password in clear and is only for a network you trust.`;
  }
  if (
    e.code === "timeout" || e.code === "closed" || e.code === "connect" || e.code === "protocol" ||
    e.code === "tls"
  ) {
    return `The port may expect the other TLS mode or another protocol: ${ports}.`;
  }
  return "Check the server and port in the URL.";
}

/** The login failed (or was refused for now). */
export function loginFix(account: Account, address: string, e: MailError): string {
  if (e.code === "temporary") return "The server is busy or limits logins; try again in a few minutes.";
  if (account.auth === "oauth2") {
    return "Sign in again with `mailmeet init --force`; if the server still refuses the token, the app your group registered may lack the IMAP/POP/SMTP permission, or POP3/IMAP/SMTP AUTH may be switched off for the account.";
  }
  if (e.code === "tls" || e.reason === "needs_encryption") {
    return "Remove ?tls=none from the URL: the server wants the connection encrypted before the login.";
  }
  const note = providerFor(address)?.note;
  return `Check the login name (${account.user}) and the password in the URL (write @ as %40 and other special characters percent-encoded), or create an app password; some providers need IMAP/POP3 switched on first.${
    note ? ` ${note}` : ""
  }`;
}

/** Renewing the OAuth2 access token failed. */
export function signInFix(err: unknown): string {
  return isRevoked(err)
    ? "A sign-in ends when the password changes, when the app's access is removed in the account's security settings, or after a long time unused."
    : "Check the network and the endpoints (--oauth-token-url); `mailmeet doctor --debug` shows the provider's answer.";
}

/** The provider no longer honours the sign-in (RFC 6749 §5.2 invalid_grant). */
export function isRevoked(err: unknown): boolean {
  return err instanceof OAuthError && err.code === "revoked";
}

/** A TCP connection to the mail server failed: refused (wrong port) or no answer (blocked). */
export function connectFix(err: unknown, side: "smtp" | "inbox", port: number, ports: string): string {
  return err instanceof Deno.errors.ConnectionRefused
    ? `Check the port in --${side}: ${ports}.`
    : `A firewall or the network may block port ${port}; try the other usual port (${ports}).`;
}

/** The mail to yourself could not be sent or read. */
export function roundTripFix(err: unknown): string {
  return err instanceof MailError && err.code === "rejected"
    ? "The server refused the message: check that --address is the address of the --smtp account."
    : "Run doctor again; if it repeats, the line above names the server that failed.";
}

/** The listener could not open. */
export function listenFix(err: unknown): string {
  return err instanceof Deno.errors.AddrInUse
    ? "Another program (maybe a running mailmeet: `mailmeet status`) has that port; pick another --listen port."
    : "Check --listen: an address of this machine (or 0.0.0.0) and a free port.";
}

/** No port mapping; only a router behind another NAT has a remedy worth saying. */
export function portMappingFix(outcome: PortMapOutcome): string | undefined {
  return !outcome.ok && outcome.code === "double_nat"
    ? "Your provider shares one public address among customers (carrier-grade NAT): direct links need hole punching or a relay."
    : undefined;
}
