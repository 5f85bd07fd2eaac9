/**
 * The OAuth 2.0 device authorization grant (RFC 8628): ask for a user code, show "open this address
 * and type this code", then poll the token endpoint until the user has signed in. Clock and waits
 * are injected, so tests run the whole dance without sleeping.
 */
import { OAuthError } from "./errors.ts";
import type { OAuthClient } from "./providers.ts";
import {
  describe,
  errorOf,
  type Fetch,
  hostOf,
  parseTokenResponse,
  postForm,
  type TokenSet,
} from "./token_endpoint.ts";

/** RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default." */
export const DEFAULT_INTERVAL_S = 5;
/** RFC 8628 §3.5: on slow_down "the interval MUST be increased by 5 seconds". */
export const SLOW_DOWN_STEP_S = 5;
export const DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code";

export interface DeviceCode {
  readonly deviceCode: string;
  /** What the user types on the sign-in page. */
  readonly userCode: string;
  /** Where the user goes (Google calls it verification_url). */
  readonly verificationUri: string;
  /** The same page with the code filled in, when the provider offers one. */
  readonly verificationUriComplete?: string;
  /** After this (ms since the epoch) the code is worthless. */
  readonly expiresAt: number;
  readonly intervalS: number;
}

export interface DeviceFlowDeps {
  fetch?: Fetch;
  now: () => number;
  /** Waits ms; rejects when the signal aborts. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

/** RFC 8628 §3.1–3.2: the device code, the user code and where to type it. */
export async function requestDeviceCode(client: OAuthClient, deps: DeviceFlowDeps): Promise<DeviceCode> {
  const host = hostOf(client.deviceUrl);
  const reply = await postForm(client.deviceUrl, {
    client_id: client.clientId,
    client_secret: client.clientSecret,
    scope: client.scope,
  }, { fetch: deps.fetch, signal: deps.signal, what: "start the sign-in" });
  const error = errorOf(reply);
  if (error || reply.status >= 400) {
    throw new OAuthError(
      `${host} refused to start the sign-in: ${describe(reply)}${clientHint(error)}`,
      reply.status >= 500 ? "unreachable" : "config",
      { error },
    );
  }
  const b = reply.body;
  const uri = typeof b.verification_uri === "string"
    ? b.verification_uri
    : typeof b.verification_url === "string"
    ? b.verification_url
    : undefined;
  if (typeof b.device_code !== "string" || typeof b.user_code !== "string" || !uri) {
    throw new OAuthError(
      `${host} answered the sign-in request without a device code, user code or address.`,
      "protocol",
    );
  }
  const expiresIn = Number(b.expires_in);
  const interval = Number(b.interval);
  return {
    deviceCode: b.device_code,
    userCode: b.user_code,
    verificationUri: uri,
    ...(typeof b.verification_uri_complete === "string"
      ? { verificationUriComplete: b.verification_uri_complete }
      : {}),
    expiresAt: deps.now() + (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 900) * 1000,
    intervalS: Number.isFinite(interval) && interval > 0 ? interval : DEFAULT_INTERVAL_S,
  };
}

/**
 * RFC 8628 §3.4–3.5: polls until the user signed in. authorization_pending: keep polling;
 * slow_down: poll 5 s less often from now on; access_denied and expired_token end it.
 * `onPoll` is told each wait (for progress output and tests).
 */
export async function pollForToken(
  client: OAuthClient,
  code: DeviceCode,
  deps: DeviceFlowDeps & { onWait?: (intervalS: number) => void },
): Promise<TokenSet> {
  const host = hostOf(client.tokenUrl);
  let intervalS = code.intervalS;
  for (;;) {
    if (deps.now() + intervalS * 1000 > code.expiresAt) throw expired(host);
    deps.onWait?.(intervalS);
    await deps.sleep(intervalS * 1000, deps.signal);
    const reply = await postForm(client.tokenUrl, {
      grant_type: DEVICE_GRANT_TYPE,
      device_code: code.deviceCode,
      client_id: client.clientId,
      client_secret: client.clientSecret,
    }, { fetch: deps.fetch, signal: deps.signal, what: "finish the sign-in" });
    const error = errorOf(reply);
    if (error === "authorization_pending") continue;
    if (error === "slow_down") {
      intervalS += SLOW_DOWN_STEP_S;
      continue;
    }
    if (error === "access_denied") {
      throw new OAuthError(`The sign-in at ${host} was declined; run the command again to retry.`, "denied", {
        error,
      });
    }
    if (error === "expired_token") throw expired(host);
    if (error || reply.status >= 400) {
      throw new OAuthError(
        `${host} refused the sign-in: ${describe(reply)}${clientHint(error)}`,
        "protocol",
        {
          error,
        },
      );
    }
    return parseTokenResponse(reply, deps.now(), host);
  }
}

function expired(host: string): OAuthError {
  return new OAuthError(
    `The sign-in code from ${host} expired before the sign-in was finished; run the command again for a new one.`,
    "expired",
    { error: "expired_token" },
  );
}

function clientHint(error: string | undefined): string {
  if (error === "invalid_client" || error === "unauthorized_client") {
    return " (check --oauth-client-id: the app must exist and allow public client / device code flows)";
  }
  if (error === "invalid_scope") {
    return " (the provider does not allow these mail scopes for this client or for the device flow)";
  }
  return "";
}
