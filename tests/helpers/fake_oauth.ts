/**
 * A local OAuth 2.0 authorization server for tests (Deno.serve on 127.0.0.1): the device
 * authorization grant (RFC 8628), refresh (RFC 6749 §6), revocation (RFC 7009) and an RFC 7662
 * style introspection endpoint that Dovecot's oauth2 passdb asks. Scripted: each device-code poll
 * takes the next answer from `pollScript` ("pending", "slow_down", "denied", "expired"), then grants.
 */

export type PollStep = "pending" | "slow_down" | "denied" | "expired";

export interface FakeOAuthOptions {
  /** Port to listen on (0 = any free port). */
  port?: number;
  /** Answers to the device-code polls before the grant; empty = grant at once. */
  pollScript?: PollStep[];
  /** The account the tokens are for (introspection's "email"). */
  user?: string;
  /** expires_in for issued access tokens, in seconds. */
  expiresInS?: number;
  /** `interval` in the device authorization response, in seconds. */
  intervalS?: number;
}

export interface FakeOAuth extends AsyncDisposable {
  readonly url: string;
  readonly deviceUrl: string;
  readonly tokenUrl: string;
  readonly revokeUrl: string;
  readonly introspectUrl: string;
  /** Requests by path, in order ("/device", "/token", …), with their form fields. */
  readonly requests: { path: string; form: Record<string, string> }[];
  /** Access tokens that introspection reports active. */
  readonly activeTokens: Set<string>;
  /** Refresh tokens the token endpoint still accepts. */
  readonly refreshTokens: Set<string>;
  /** Issues an access token for `user` directly (as if a sign-in had happened). */
  issue(user?: string): { accessToken: string; refreshToken: string };
  /** Makes every token given so far invalid, as a user revoking the app would. */
  revokeAll(): void;
}

export function fakeOAuth(opts: FakeOAuthOptions = {}): FakeOAuth {
  const script = [...(opts.pollScript ?? [])];
  const requests: { path: string; form: Record<string, string> }[] = [];
  const activeTokens = new Set<string>();
  const refreshTokens = new Set<string>();
  const owners = new Map<string, string>();
  const defaultUser = opts.user ?? "user@oauth.test";
  let seq = 0;
  const issue = (user = defaultUser) => {
    seq++;
    const accessToken = `at-${seq}-${crypto.randomUUID()}`;
    const refreshToken = `rt-${seq}-${crypto.randomUUID()}`;
    activeTokens.add(accessToken);
    refreshTokens.add(refreshToken);
    owners.set(accessToken, user);
    owners.set(refreshToken, user);
    return { accessToken, refreshToken };
  };
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  const tokenReply = (user: string) => {
    const t = issue(user);
    return json(200, {
      access_token: t.accessToken,
      refresh_token: t.refreshToken,
      token_type: "Bearer",
      expires_in: opts.expiresInS ?? 3600,
      scope: "mail",
    });
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: opts.port ?? 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const form = Object.fromEntries(new URLSearchParams(await req.text()));
    requests.push({ path, form });
    switch (path) {
      case "/device":
        return json(200, {
          device_code: "dev-code-1",
          user_code: "ABCD-EFGH",
          verification_uri: `http://127.0.0.1/verify`,
          expires_in: 900,
          interval: opts.intervalS ?? 5,
        });
      case "/token": {
        if (form.grant_type === "urn:ietf:params:oauth:grant-type:device_code") {
          const step = script.shift();
          if (step === "pending") return json(400, { error: "authorization_pending" });
          if (step === "slow_down") return json(400, { error: "slow_down" });
          if (step === "denied") return json(400, { error: "access_denied" });
          if (step === "expired") return json(400, { error: "expired_token" });
          return tokenReply(defaultUser);
        }
        if (form.grant_type === "refresh_token") {
          if (!refreshTokens.has(form.refresh_token)) {
            return json(400, { error: "invalid_grant", error_description: "The refresh token was revoked." });
          }
          // Rotate, as Microsoft does: the old refresh token stops working.
          refreshTokens.delete(form.refresh_token);
          return tokenReply(owners.get(form.refresh_token) ?? defaultUser);
        }
        return json(400, { error: "unsupported_grant_type" });
      }
      case "/revoke":
        refreshTokens.delete(form.token);
        activeTokens.delete(form.token);
        return new Response(null, { status: 200 });
      case "/introspect": {
        // What Dovecot's oauth2 passdb with introspection_mode = post sends: token=… (RFC 7662 §2.1).
        const token = form.token ?? "";
        if (!activeTokens.has(token)) return json(200, { active: false });
        return json(200, { active: true, email: owners.get(token) ?? defaultUser });
      }
      default:
        return new Response("not found", { status: 404 });
    }
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    deviceUrl: `${url}/device`,
    tokenUrl: `${url}/token`,
    revokeUrl: `${url}/revoke`,
    introspectUrl: `${url}/introspect`,
    requests,
    activeTokens,
    refreshTokens,
    issue,
    revokeAll() {
      activeTokens.clear();
      refreshTokens.clear();
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
