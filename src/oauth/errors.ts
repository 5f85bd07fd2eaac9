/** Typed OAuth errors: `code` says what happened, the message says what to do. */

export type OAuthErrorCode =
  | "config" // no client id, a bad endpoint URL, a token file that cannot be read
  | "denied" // the user declined on the sign-in page (RFC 8628 §3.5 access_denied)
  | "expired" // the user code ran out before anyone signed in (RFC 8628 §3.5 expired_token)
  | "revoked" // the refresh token is no longer accepted (RFC 6749 §5.2 invalid_grant)
  | "unreachable" // the provider could not be reached, or answered 5xx
  | "protocol"; // the provider answered something else than RFC 6749 / RFC 8628 describe

export class OAuthError extends Error {
  /** The provider's `error` value (RFC 6749 §5.2), when it sent one. */
  readonly error?: string;
  constructor(
    message: string,
    readonly code: OAuthErrorCode,
    options: { error?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "OAuthError";
    this.error = options.error;
  }
}
