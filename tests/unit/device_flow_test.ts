import assert from "node:assert/strict";
import { pollForToken, requestDeviceCode } from "../../src/oauth/device_flow.ts";
import { OAuthError } from "../../src/oauth/errors.ts";
import type { OAuthClient } from "../../src/oauth/providers.ts";
import { StoredTokenSource } from "../../src/oauth/token_source.ts";
import { readSignIn, type StoredSignIn, tokenFileFor, writeSignIn } from "../../src/oauth/token_store.ts";
import { MailError } from "../../src/mail/errors.ts";
import { type FakeOAuth, fakeOAuth } from "../helpers/fake_oauth.ts";

/** A virtual clock: sleep() advances it and records the wait instead of waiting. */
function virtualTime(start = 1_800_000_000_000) {
  let now = start;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    advance: (ms: number) => (now += ms),
    sleep: (ms: number) => {
      waits.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

function clientOf(server: FakeOAuth): OAuthClient {
  return {
    provider: "test",
    clientId: "client-1",
    deviceUrl: server.deviceUrl,
    tokenUrl: server.tokenUrl,
    revokeUrl: server.revokeUrl,
    scope: "mail offline_access",
  };
}

Deno.test("the device flow shows the user code and address the server gave", async () => {
  await using server = fakeOAuth({ intervalS: 3 });
  const t = virtualTime();
  const code = await requestDeviceCode(clientOf(server), t);
  assert.equal(code.userCode, "ABCD-EFGH");
  assert.equal(code.verificationUri, "http://127.0.0.1/verify");
  assert.equal(code.intervalS, 3);
  assert.equal(code.expiresAt, t.now() + 900_000);
  assert.deepEqual(server.requests[0].form, { client_id: "client-1", scope: "mail offline_access" });
});

Deno.test("the device flow keeps polling at the interval while authorization is pending", async () => {
  await using server = fakeOAuth({ intervalS: 5, pollScript: ["pending", "pending", "pending"] });
  const t = virtualTime();
  const client = clientOf(server);
  const tokens = await pollForToken(client, await requestDeviceCode(client, t), t);
  assert.deepEqual(t.waits, [5000, 5000, 5000, 5000]);
  assert.ok(server.activeTokens.has(tokens.accessToken));
  assert.ok(tokens.refreshToken);
  assert.equal(tokens.expiresAt, t.now() + 3600_000);
  const polls = server.requests.filter((r) => r.path === "/token");
  assert.equal(polls.length, 4);
  assert.equal(polls[0].form.grant_type, "urn:ietf:params:oauth:grant-type:device_code");
  assert.equal(polls[0].form.device_code, "dev-code-1");
});

Deno.test("slow_down makes the device flow poll 5 seconds less often from then on (RFC 8628 §3.5)", async () => {
  await using server = fakeOAuth({
    intervalS: 5,
    pollScript: ["pending", "slow_down", "pending", "slow_down"],
  });
  const t = virtualTime();
  const client = clientOf(server);
  await pollForToken(client, await requestDeviceCode(client, t), t);
  assert.deepEqual(t.waits, [5000, 5000, 10_000, 10_000, 15_000]);
});

Deno.test("an expired_token answer ends the device flow with an error telling to start again", async () => {
  await using server = fakeOAuth({ pollScript: ["pending", "expired"] });
  const t = virtualTime();
  const client = clientOf(server);
  await assert.rejects(
    pollForToken(client, await requestDeviceCode(client, t), t),
    (e: unknown) =>
      e instanceof OAuthError && e.code === "expired" && /run the command again/.test(e.message),
  );
});

Deno.test("the device flow stops by itself when the user code's lifetime has passed", async () => {
  await using server = fakeOAuth({
    intervalS: 300,
    pollScript: ["pending", "pending", "pending", "pending"],
  });
  const t = virtualTime();
  const client = clientOf(server);
  await assert.rejects(
    pollForToken(client, await requestDeviceCode(client, t), t),
    (e: unknown) => e instanceof OAuthError && e.code === "expired",
  );
  // 900 s of lifetime at 300 s a poll: three polls, then no fourth that would outlive the code.
  assert.equal(server.requests.filter((r) => r.path === "/token").length, 3);
});

Deno.test("a declined sign-in ends the device flow with access denied", async () => {
  await using server = fakeOAuth({ pollScript: ["denied"] });
  const t = virtualTime();
  const client = clientOf(server);
  await assert.rejects(
    pollForToken(client, await requestDeviceCode(client, t), t),
    (e: unknown) => e instanceof OAuthError && e.code === "denied",
  );
});

async function signedIn(server: FakeOAuth, t: ReturnType<typeof virtualTime>): Promise<StoredSignIn> {
  const client = clientOf(server);
  const tokens = await pollForToken(client, await requestDeviceCode(client, t), t);
  return { client, user: "user@oauth.test", tokens };
}

Deno.test("the token source hands out the stored token until 5 minutes before it expires, then refreshes", async () => {
  await using server = fakeOAuth({ expiresInS: 3600 });
  const t = virtualTime();
  const first = await signedIn(server, t);
  const saved: StoredSignIn[] = [];
  const source = new StoredTokenSource(first, "/unused", {
    now: t.now,
    save: (s) => Promise.resolve(void saved.push(s)),
  });
  assert.equal(await source.accessToken(), first.tokens.accessToken);
  t.advance(3600_000 - 5 * 60_000 - 1);
  assert.equal(await source.accessToken(), first.tokens.accessToken);
  t.advance(1);
  const renewed = await source.accessToken();
  assert.notEqual(renewed, first.tokens.accessToken);
  assert.ok(server.activeTokens.has(renewed));
  // The rotated refresh token is saved before the new access token is used.
  assert.equal(saved.length, 1);
  assert.equal(saved[0].tokens.accessToken, renewed);
  assert.notEqual(saved[0].tokens.refreshToken, first.tokens.refreshToken);
  const refreshes = server.requests.filter((r) => r.form.grant_type === "refresh_token");
  assert.equal(refreshes.length, 1);
  assert.equal(refreshes[0].form.refresh_token, first.tokens.refreshToken);
});

Deno.test("a renew request refreshes even a token that has not expired, once for concurrent callers", async () => {
  await using server = fakeOAuth();
  const t = virtualTime();
  const source = new StoredTokenSource(await signedIn(server, t), "/unused", {
    now: t.now,
    save: () => Promise.resolve(),
  });
  const [a, b] = await Promise.all([
    source.accessToken({ renew: true }),
    source.accessToken({ renew: true }),
  ]);
  assert.equal(a, b);
  assert.equal(server.requests.filter((r) => r.form.grant_type === "refresh_token").length, 1);
});

Deno.test("a revoked sign-in becomes a mail auth error that says to sign in again", async () => {
  await using server = fakeOAuth();
  const t = virtualTime();
  const source = new StoredTokenSource(await signedIn(server, t), "/unused", {
    now: t.now,
    save: () => Promise.resolve(),
  });
  server.revokeAll();
  await assert.rejects(source.accessToken({ renew: true }), (e: unknown) => {
    assert.ok(e instanceof MailError);
    assert.equal(e.code, "auth");
    assert.match(
      e.message,
      /^The OAuth2 sign-in for user@oauth\.test has expired or was revoked; sign in again with `mailmeet init --force --oauth test`/,
    );
    return true;
  });
});

Deno.test("the sign-in file is owner-only and reads back as written", async () => {
  await using server = fakeOAuth();
  const t = virtualTime();
  const dir = await Deno.makeTempDir();
  try {
    const path = tokenFileFor(`${dir}/config.json`);
    assert.equal(path, `${dir}/oauth-token.json`);
    assert.equal(tokenFileFor(`${dir}/work.json`), `${dir}/work.oauth-token.json`);
    const got = await signedIn(server, t);
    // The granted scope is not kept: the requested one (in the client) is what a refresh asks for.
    const { scope: _granted, ...tokens } = got.tokens;
    const s = { ...got, tokens };
    await writeSignIn(path, s);
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(await readSignIn(path), s);
    assert.equal(await readSignIn(`${dir}/missing.json`), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a second process's source takes the sign-in another one renewed instead of refreshing again", async () => {
  await using server = fakeOAuth({ expiresInS: 3600 });
  const t = virtualTime();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/oauth-token.json`;
    await writeSignIn(path, await signedIn(server, t));
    const node = await StoredTokenSource.open(path, { now: t.now });
    const app = await StoredTokenSource.open(path, { now: t.now });
    t.advance(3600_000);
    const renewed = await node.accessToken();
    assert.equal(await app.accessToken(), renewed);
    assert.equal(server.requests.filter((r) => r.form.grant_type === "refresh_token").length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
