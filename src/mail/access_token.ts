/**
 * Where an OAuth2 login gets its access token. The mail clients only ask; obtaining, storing and
 * refreshing tokens is src/oauth/'s business (and the CLI's, which wires the two together).
 */
import type { Account } from "./account.ts";
import { MailError } from "./errors.ts";

export interface AccessTokenSource {
  /**
   * A currently valid access token. `renew` asks for a new one even if the old has not reached its
   * expiry (the server has just refused it). Throws a MailError "auth" when the sign-in is no longer
   * valid (revoked, expired refresh token) and "temporary" when the provider cannot be reached.
   */
  accessToken(opts?: { renew?: boolean }): Promise<string>;
}

/** The token for `account`, or a config error naming what to do when there is no source. */
export async function tokenFor(
  account: Account,
  source: AccessTokenSource | undefined,
  opts: { renew?: boolean } = {},
): Promise<string> {
  if (!source) {
    throw new MailError(
      `The URL for ${account.host} asks for an OAuth2 login (auth=oauth2), but there is no sign-in; ` +
        "run `mailmeet init --oauth microsoft|google` first.",
      "config",
    );
  }
  const token = await source.accessToken(opts);
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x20\x7f]/.test(token)) {
    // RFC 6750 §2.1 b64token: a token with spaces or controls would break the SASL message.
    throw new MailError("The stored OAuth2 access token holds characters a token may not have.", "auth");
  }
  return token;
}
