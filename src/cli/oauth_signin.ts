/**
 * `init --oauth`: which OAuth2 client and endpoints to use (provider presets, replaced by flags),
 * the mail URLs that log in with it, and the sign-in itself — the device flow with its "open this
 * address, type this code" line — written owner-only beside the config. The old sign-in is revoked
 * (where the provider offers revocation) and removed whenever init replaces or drops it.
 */
import { parseAccount } from "../mail/account.ts";
import { pollForToken, requestDeviceCode } from "../oauth/device_flow.ts";
import { OAuthError } from "../oauth/errors.ts";
import {
  isProviderName,
  type OAuthClient,
  PROVIDER_ENDPOINTS,
  providerForAddress,
} from "../oauth/providers.ts";
import { type Fetch, revokeToken } from "../oauth/token_endpoint.ts";
import { readSignIn, removeSignIn, type StoredSignIn, writeSignIn } from "../oauth/token_store.ts";
import { UsageError } from "./errors.ts";
import type { ExtraNames, ExtraOption, Resolved } from "./options.ts";
import { suggestServers } from "./providers.ts";

export interface SignInDeps {
  fetch?: Fetch;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

export interface SignInIo {
  /** Lines a person must see even with --quiet (the code to type). */
  show: (line: string) => void;
  /** Progress notes (dropped with --quiet or --json). */
  say: (line: string) => void;
  /** --json: one event object. */
  event?: (e: Record<string, unknown>) => void;
}

/** `mailmeet init`'s options for an OAuth2 sign-in (init lists them after its own). */
export const OAUTH_EXTRAS = [
  {
    name: "oauth",
    kind: "string",
    arg: "PROVIDER",
    help: "sign in with OAuth2 instead of a password: microsoft (Outlook.com, Hotmail) or google",
  },
  {
    name: "oauth-client-id",
    kind: "string",
    arg: "ID",
    help: "the OAuth2 app (client) id your group registered",
  },
  {
    name: "oauth-client-secret",
    kind: "string",
    arg: "TEXT",
    help: "the app's client secret (Google asks for it)",
  },
  {
    name: "oauth-device-url",
    kind: "string",
    arg: "URL",
    help: "the provider's device authorization endpoint",
  },
  { name: "oauth-token-url", kind: "string", arg: "URL", help: "the provider's token endpoint" },
  { name: "oauth-scope", kind: "string", arg: "SCOPES", help: "space-separated scopes to ask for" },
] as const satisfies readonly ExtraOption[];
type OAuthFlag = ExtraNames<typeof OAUTH_EXTRAS>;

const READ_ME = 'see README, "Signing in with OAuth2"';

function extra(r: Resolved<OAuthFlag>, name: OAuthFlag): string | undefined {
  const v = r.extra[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/**
 * True when the command line asks for an OAuth2 sign-in: --oauth, or --oauth-client-id alone (the
 * provider then comes from the address: outlook.com → microsoft).
 */
export function oauthRequested(r: Resolved<OAuthFlag>): boolean {
  return extra(r, "oauth") !== undefined || extra(r, "oauth-client-id") !== undefined;
}

/**
 * The client to sign in with: the provider's endpoints, each replaceable by a flag; the client id
 * from --oauth-client-id, else the one the previous sign-in used with the same provider.
 */
export function oauthClient(
  r: Resolved<OAuthFlag>,
  address: string,
  previous?: StoredSignIn,
): OAuthClient {
  const name = extra(r, "oauth") ?? previous?.client.provider ?? providerForAddress(address);
  if (!name) {
    throw new UsageError(
      `Say which provider to sign in with: --oauth microsoft (Outlook.com, Hotmail) or --oauth google.`,
    );
  }
  const same = previous && previous.client.provider === name ? previous.client : undefined;
  const preset = isProviderName(name) ? PROVIDER_ENDPOINTS[name] : same;
  const deviceUrl = extra(r, "oauth-device-url") ?? preset?.deviceUrl;
  const tokenUrl = extra(r, "oauth-token-url") ?? preset?.tokenUrl;
  if (!deviceUrl || !tokenUrl) {
    throw new UsageError(
      `--oauth ${name} is not a provider mailmeet knows (microsoft, google); for another, give --oauth-device-url and --oauth-token-url.`,
    );
  }
  for (const [flag, url] of [["--oauth-device-url", deviceUrl], ["--oauth-token-url", tokenUrl]]) {
    if (!/^https?:\/\/[^\s]+$/.test(url)) throw new UsageError(`${flag} ${url} is not an http(s) URL.`);
  }
  const clientId = extra(r, "oauth-client-id") ?? same?.clientId;
  if (!clientId) {
    throw new UsageError(
      `--oauth ${name} needs --oauth-client-id ID: the id of an app registered with the provider for your group (${READ_ME}).`,
    );
  }
  const clientSecret = extra(r, "oauth-client-secret") ?? same?.clientSecret;
  const scope = extra(r, "oauth-scope") ?? preset?.scope;
  if (!scope) {
    throw new UsageError(`--oauth ${name} needs --oauth-scope: the scopes that allow IMAP, POP3 and SMTP.`);
  }
  const revokeUrl = preset?.revokeUrl;
  return {
    provider: name,
    clientId,
    ...(clientSecret ? { clientSecret } : {}),
    deviceUrl,
    tokenUrl,
    ...(revokeUrl ? { revokeUrl } : {}),
    scope,
  };
}

/** `url` logging in as `login` with a bearer token: no password, `auth=oauth2`. */
export function withOAuth(url: string, login: string): string {
  const u = new URL(url);
  if (u.protocol === "maildir:") return url;
  if (!u.username) u.username = encodeURIComponent(login);
  u.password = "";
  u.searchParams.set("auth", "oauth2");
  return u.toString();
}

/**
 * --smtp/--inbox for an OAuth2 sign-in: the ones given, made to log in with the token, else the
 * provider's usual servers for the address.
 */
export function oauthServers(
  settings: Record<string, unknown>,
  given: { smtp: boolean; inbox: boolean },
  address: string,
): void {
  const s = suggestServers(address);
  settings.smtp = withOAuth(given.smtp ? String(settings.smtp) : s.smtp, address);
  settings.inbox = withOAuth(given.inbox ? String(settings.inbox) : s.inbox, address);
}

/** Whether any of the URLs logs in with OAuth2. */
export function usesOAuth(...urls: unknown[]): boolean {
  return urls.some((u) => {
    if (typeof u !== "string") return false;
    try {
      return parseAccount(u).auth === "oauth2";
    } catch {
      return false;
    }
  });
}

/** Runs the device flow and returns the sign-in (not yet written). */
export async function signIn(
  client: OAuthClient,
  user: string,
  io: SignInIo,
  deps: SignInDeps = {},
): Promise<StoredSignIn> {
  const flow = {
    fetch: deps.fetch,
    now: deps.now ?? Date.now,
    sleep: deps.sleep ?? sleep,
    signal: deps.signal,
  };
  const code = await requestDeviceCode(client, flow);
  if (io.event) {
    io.event({
      event: "oauth_code",
      provider: client.provider,
      verification_uri: code.verificationUri,
      user_code: code.userCode,
      expires_at: new Date(code.expiresAt).toISOString(),
    });
  } else {
    io.show(
      `To sign in as ${user}, open ${code.verificationUri} in a browser and enter the code ${code.userCode}` +
        ` (valid for ${Math.round((code.expiresAt - flow.now()) / 60_000)} minutes).`,
    );
  }
  io.say("  Waiting for the sign-in to finish…");
  const tokens = await pollForToken(client, code, flow);
  if (!tokens.refreshToken) {
    io.say(
      "  The provider gave no refresh token, so mailmeet must sign in again when this access token expires.",
    );
  }
  return { client, user, tokens };
}

/** Revokes (best effort) and removes a stored sign-in; true when there was one. */
export async function dropSignIn(path: string, deps: SignInDeps = {}): Promise<boolean> {
  let old: StoredSignIn | undefined;
  try {
    old = await readSignIn(path);
  } catch {
    // unreadable: remove it all the same
  }
  if (old?.client.revokeUrl && old.tokens.refreshToken) {
    await revokeToken(old.client.revokeUrl, old.tokens.refreshToken, { fetch: deps.fetch });
  }
  try {
    return await removeSignIn(path);
  } catch (err) {
    if (err instanceof OAuthError) throw new UsageError(err.message);
    throw err;
  }
}

export async function saveSignIn(path: string, s: StoredSignIn): Promise<void> {
  try {
    await writeSignIn(path, s);
  } catch (err) {
    if (err instanceof OAuthError) throw new UsageError(err.message);
    throw err;
  }
}

export async function previousSignIn(path: string): Promise<StoredSignIn | undefined> {
  try {
    return await readSignIn(path);
  } catch {
    return undefined;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
