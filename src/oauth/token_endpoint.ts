/**
 * Talking to an OAuth 2.0 authorization server: form-encoded POSTs (RFC 6749 §3.2, RFC 8628 §3.1),
 * JSON answers, and the error object of RFC 6749 §5.2 — `error` and `error_description` — which
 * every grant shares.
 */
import { OAuthError } from "./errors.ts";
import type { OAuthClient } from "./providers.ts";

/** An answer larger than this is not a token response. */
const MAX_RESPONSE_BYTES = 64 * 1024;
export const HTTP_TIMEOUT_MS = 30_000;

export type Fetch = typeof fetch;

export interface OAuthReply {
  /** HTTP status. */
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** POSTs `params` form-encoded and returns the JSON object the server answered (any status). */
export async function postForm(
  url: string,
  params: Record<string, string | undefined>,
  opts: { fetch?: Fetch; signal?: AbortSignal; what: string },
): Promise<OAuthReply> {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) form.set(k, v);
  const host = hostOf(url);
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: form,
      signal: opts.signal ?? AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new OAuthError(
      `Cannot reach ${host} to ${opts.what}: ${(err as Error).message.replace(/\.$/, "")}.`,
      "unreachable",
      { cause: err },
    );
  }
  const text = await res.text();
  if (text.length > MAX_RESPONSE_BYTES) {
    throw new OAuthError(`${host} sent an answer too large for ${opts.what}.`, "protocol");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    if (res.status >= 500) {
      throw new OAuthError(
        `${host} failed (HTTP ${res.status}) to ${opts.what}; try again later.`,
        "unreachable",
      );
    }
    throw new OAuthError(
      `${host} did not answer with JSON (HTTP ${res.status}) to ${opts.what}; check the endpoint URL.`,
      "protocol",
    );
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new OAuthError(
      `${host} answered ${opts.what} with something other than a JSON object.`,
      "protocol",
    );
  }
  return { status: res.status, body: body as Record<string, unknown> };
}

/** RFC 6749 §5.2 `error`, when the reply is an error. */
export function errorOf(reply: OAuthReply): string | undefined {
  const e = reply.body.error;
  return typeof e === "string" ? e : undefined;
}

/** `error_description` for messages, cut short and stripped of control characters. */
export function describe(reply: OAuthReply): string {
  const d = reply.body.error_description;
  const text = typeof d === "string" ? d : errorOf(reply) ?? `HTTP ${reply.status}`;
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, " ").split(/\s+Trace ID:/)[0].slice(0, 200).trim();
}

/** The tokens of a successful token response (RFC 6749 §5.1). */
export interface TokenSet {
  readonly accessToken: string;
  readonly refreshToken?: string;
  /** Milliseconds since the epoch; undefined when the server gave no expires_in. */
  readonly expiresAt?: number;
  readonly scope?: string;
}

export function parseTokenResponse(reply: OAuthReply, now: number, host: string): TokenSet {
  const b = reply.body;
  if (typeof b.access_token !== "string" || b.access_token === "") {
    throw new OAuthError(`${host} sent a token response without an access token.`, "protocol");
  }
  if (typeof b.token_type === "string" && b.token_type.toLowerCase() !== "bearer") {
    throw new OAuthError(
      `${host} issued a "${b.token_type}" token; mail servers take Bearer tokens only.`,
      "protocol",
    );
  }
  const expiresIn = typeof b.expires_in === "number" ? b.expires_in : Number(b.expires_in);
  return {
    accessToken: b.access_token,
    ...(typeof b.refresh_token === "string" && b.refresh_token ? { refreshToken: b.refresh_token } : {}),
    ...(Number.isFinite(expiresIn) && expiresIn > 0 ? { expiresAt: now + expiresIn * 1000 } : {}),
    ...(typeof b.scope === "string" ? { scope: b.scope } : {}),
  };
}

/**
 * RFC 6749 §6: a new access token for a refresh token. invalid_grant means the refresh token itself
 * expired or was revoked (RFC 6749 §5.2): only signing in again helps.
 */
export async function refreshAccessToken(
  client: OAuthClient,
  refreshToken: string,
  deps: { fetch?: Fetch; now: () => number },
): Promise<TokenSet> {
  const host = hostOf(client.tokenUrl);
  const reply = await postForm(client.tokenUrl, {
    grant_type: "refresh_token",
    refresh_token: refreshToken,
    client_id: client.clientId,
    client_secret: client.clientSecret,
    scope: client.scope,
  }, { fetch: deps.fetch, what: "renew the access token" });
  const error = errorOf(reply);
  if (error === "invalid_grant") {
    throw new OAuthError(
      `${host} no longer accepts the sign-in (it expired or was revoked: ${describe(reply)})`,
      "revoked",
      { error },
    );
  }
  if (error || reply.status >= 400) {
    throw new OAuthError(
      `${host} refused to renew the access token: ${describe(reply)}`,
      reply.status >= 500 || error === "temporarily_unavailable" ? "unreachable" : "protocol",
      { error },
    );
  }
  const set = parseTokenResponse(reply, deps.now(), host);
  // RFC 6749 §6: the server may issue a new refresh token; if it does not, the old one stays valid.
  return set.refreshToken ? set : { ...set, refreshToken };
}

/** RFC 7009 §2.1: asks the provider to forget a token; §2.2: 200 means done. Best effort. */
export async function revokeToken(
  revokeUrl: string,
  token: string,
  deps: { fetch?: Fetch } = {},
): Promise<boolean> {
  try {
    const res = await (deps.fetch ?? fetch)(revokeUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, token_type_hint: "refresh_token" }),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
