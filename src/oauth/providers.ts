/**
 * Where the device authorization grant (RFC 8628) and the token endpoint (RFC 6749) of each mail
 * provider live, and the scopes that let a client use IMAP, POP3 and SMTP. Every value can be
 * replaced from the command line (`--oauth-device-url`, `--oauth-token-url`, `--oauth-scope`).
 */

export type ProviderName = "microsoft" | "google";

export interface OAuthEndpoints {
  /** RFC 8628 §3.1 device authorization endpoint. */
  readonly deviceUrl: string;
  /** RFC 6749 §3.2 token endpoint. */
  readonly tokenUrl: string;
  /** RFC 7009 revocation endpoint, where the provider has one. */
  readonly revokeUrl?: string;
  /** Space-separated scopes (RFC 6749 §3.3). */
  readonly scope: string;
}

export interface OAuthClient extends OAuthEndpoints {
  readonly provider: string;
  readonly clientId: string;
  /** Google asks "installed" clients for their (not secret) client secret too. */
  readonly clientSecret?: string;
}

export const PROVIDER_ENDPOINTS: Readonly<Record<ProviderName, OAuthEndpoints>> = {
  // Microsoft identity platform, "common" tenant: personal accounts (Outlook.com, Hotmail) and work
  // accounts alike. offline_access brings the refresh token; the three outlook.office.com scopes
  // are the ones Microsoft documents for IMAP, POP and SMTP AUTH.
  microsoft: {
    deviceUrl: "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
    tokenUrl: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    scope: "offline_access https://outlook.office.com/IMAP.AccessAsUser.All " +
      "https://outlook.office.com/POP.AccessAsUser.All https://outlook.office.com/SMTP.Send",
  },
  // Google: full mail access is the one scope that covers IMAP, POP and SMTP.
  google: {
    deviceUrl: "https://oauth2.googleapis.com/device/code",
    tokenUrl: "https://oauth2.googleapis.com/token",
    revokeUrl: "https://oauth2.googleapis.com/revoke",
    scope: "https://mail.google.com/",
  },
};

export function isProviderName(name: string): name is ProviderName {
  return name === "microsoft" || name === "google";
}

/** Which provider serves an address's mail, from its domain, when it is one we know. */
export function providerForAddress(address: string): ProviderName | undefined {
  const domain = address.split("@")[1]?.toLowerCase() ?? "";
  if (/^(outlook|hotmail|live|msn)\.[a-z.]+$/.test(domain)) return "microsoft";
  if (domain === "gmail.com" || domain === "googlemail.com") return "google";
  return undefined;
}
