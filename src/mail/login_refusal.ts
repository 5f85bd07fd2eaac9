/**
 * What a refused login means to the user, worded once for IMAP and POP3: the same advice whichever
 * protocol the inbox speaks. Each protocol decides which case its reply is (IMAP by RFC 5530 codes,
 * POP3 by RFC 3206 codes); these only say it.
 */
import { MailError } from "./errors.ts";
import type { BearerFailure, BearerMechanism } from "./sasl.ts";

/** The command (secrets hidden) and the server's reply, for --json and the doctor. */
export interface LoginExchange {
  command: string;
  response: string;
}

/** The credentials are wrong: nothing to retry without the user. */
export function passwordRefused(where: string, user: string, exchange: LoginExchange): MailError {
  return new MailError(
    `Cannot log in to ${where} as "${user}": the server refused the password. Check it, or use an app password.`,
    "auth",
    exchange,
  );
}

/** The OAuth2 token was refused even after renewing it: the user must sign in again. */
export function tokenRefused(
  where: string,
  user: string,
  mechanism: BearerMechanism,
  failure: BearerFailure | undefined,
  exchange: LoginExchange,
): MailError {
  const why = failure?.status
    ? ` (status ${failure.status}${failure.scope ? `, scope ${failure.scope}` : ""})`
    : "";
  return new MailError(
    `Cannot log in to ${where} as "${user}": the server refused the OAuth2 access token${why} by ${mechanism}; ` +
      "the sign-in may have been revoked or lack the mail permission: run `mailmeet init --force --oauth …` to sign in again.",
    "auth",
    exchange,
  );
}

/** "Not now", not "not like this": `busy` says what the server told (its words are `text`). */
export function loginNotNow(
  where: string,
  user: string,
  busy: string,
  text: string,
  exchange: LoginExchange,
): MailError {
  return new MailError(
    `Cannot log in to ${where} as "${user}": ${busy} ("${text}"). Try again later.`,
    "temporary",
    exchange,
  );
}
