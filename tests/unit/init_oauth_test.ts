/** `init --oauth` in-process against a local fake authorization server, and doctor's sign-in check. */
import assert from "node:assert/strict";
import { resolveOptions } from "../../src/cli/options.ts";
import { initCommand } from "../../src/cli/commands/init.ts";
import { COMMANDS } from "../../src/cli/commands.ts";
import { mailSettings } from "../../src/cli/context.ts";
import { type CheckResult, checkSignIn } from "../../src/cli/doctor.ts";
import { UsageError } from "../../src/cli/errors.ts";
import { readSignIn } from "../../src/oauth/token_store.ts";
import { scriptedIo } from "./prompt_test.ts";
import { type FakeOAuth, fakeOAuth } from "../helpers/fake_oauth.ts";

const EXTRAS = COMMANDS.flatMap((c) => c.extras ?? []);

async function withHome(fn: (home: string, env: Record<string, string>) => Promise<void>) {
  const home = await Deno.makeTempDir({ prefix: "mailmeet-home-" });
  try {
    await fn(home, { HOME: home });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** Device-flow waits that only move a virtual clock. */
function instant() {
  let now = 1_800_000_000_000;
  return { now: () => now, sleep: (ms: number) => Promise.resolve(void (now += ms)) };
}

function endpoints(server: FakeOAuth): string[] {
  return ["--oauth-device-url", server.deviceUrl, "--oauth-token-url", server.tokenUrl];
}

Deno.test("init --oauth microsoft shows the code, signs in and writes OAuth2 URLs and an owner-only sign-in", async () => {
  await withHome(async (home, env) => {
    await using server = fakeOAuth({ pollScript: ["pending", "slow_down"], user: "bob@outlook.com" });
    const printed: string[] = [];
    const r = await resolveOptions(
      [
        "init",
        "--address",
        "Bob@Outlook.com",
        "--oauth",
        "microsoft",
        "--oauth-client-id",
        "group-app",
        ...endpoints(server),
      ],
      env,
      EXTRAS,
    );
    assert.equal(
      await initCommand(r, { env, interactive: false, print: (l) => printed.push(l), oauth: instant() }),
      0,
    );
    const dir = `${home}/.config/mailmeet`;
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.equal(config.smtp, "smtp://bob%40outlook.com@smtp-mail.outlook.com:587?auth=oauth2");
    assert.equal(config.inbox, "imaps://bob%40outlook.com@outlook.office365.com:993/INBOX?auth=oauth2");
    assert.match(
      printed.join("\n"),
      /open http:\/\/127\.0\.0\.1\/verify in a browser and enter the code ABCD-EFGH/,
    );
    const stored = await readSignIn(`${dir}/oauth-token.json`);
    assert.equal(stored?.client.clientId, "group-app");
    assert.equal(stored?.client.provider, "microsoft");
    assert.equal(stored?.user, "bob@outlook.com");
    assert.ok(stored && server.activeTokens.has(stored.tokens.accessToken));
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(`${dir}/oauth-token.json`)).mode! & 0o777, 0o600);
    }
    // Every command finds the sign-in beside the config.
    const run = await resolveOptions(["join"], env);
    const mail = await mailSettings(run);
    assert.equal(await mail.tokens?.accessToken(), stored?.tokens.accessToken);
  });
});

Deno.test("init --oauth without a client id says how to get one", async () => {
  await withHome(async (_home, env) => {
    const r = await resolveOptions(
      ["init", "--address", "bob@outlook.com", "--oauth", "microsoft"],
      env,
      EXTRAS,
    );
    await assert.rejects(
      initCommand(r, { env, interactive: false, print: () => {} }),
      (e: unknown) => e instanceof UsageError && /needs --oauth-client-id ID/.test(e.message),
    );
  });
});

Deno.test("init --force signs in afresh and revokes the old sign-in; with password URLs it removes it", async () => {
  await withHome(async (home, env) => {
    await using server = fakeOAuth({ user: "bob@gmail.com" });
    const dir = `${home}/.config/mailmeet`;
    // Google's revocation endpoint, sent to the fake server instead.
    const viaFake: typeof fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      return fetch(url.startsWith("https://oauth2.googleapis.com/revoke") ? server.revokeUrl : input, init);
    };
    const deps = { env, interactive: false, print: () => {}, oauth: { ...instant(), fetch: viaFake } };
    const first = ["init", "--address", "bob@gmail.com", "--oauth", "google", "--oauth-client-id", "g-app"];
    await initCommand(await resolveOptions([...first, ...endpoints(server)], env, EXTRAS), deps);
    const old = (await readSignIn(`${dir}/oauth-token.json`))!;
    assert.equal(old.client.revokeUrl, "https://oauth2.googleapis.com/revoke");

    // --force, nothing about OAuth given: the same client signs in again; the old token is revoked.
    await initCommand(
      await resolveOptions(["init", "--force", "--via", "host@gmail.com", ...endpoints(server)], env, EXTRAS),
      deps,
    );
    const renewed = (await readSignIn(`${dir}/oauth-token.json`))!;
    assert.notEqual(renewed.tokens.refreshToken, old.tokens.refreshToken);
    assert.equal(renewed.client.clientId, "g-app");
    assert.ok(!server.refreshTokens.has(old.tokens.refreshToken!));
    assert.deepEqual(server.requests.filter((q) => q.path === "/revoke").map((q) => q.form.token), [
      old.tokens.refreshToken,
    ]);

    // Password URLs: the sign-in is revoked and the file removed.
    const pw = [
      "--smtp",
      "smtps://bob%40gmail.com:app-pw@smtp.gmail.com:465",
      "--inbox",
      "imaps://bob%40gmail.com:app-pw@imap.gmail.com:993/INBOX",
    ];
    await initCommand(await resolveOptions(["init", "--force", ...pw], env, EXTRAS), deps);
    await assert.rejects(Deno.stat(`${dir}/oauth-token.json`), Deno.errors.NotFound);
    assert.ok(!server.refreshTokens.has(renewed.tokens.refreshToken!));
  });
});

Deno.test("doctor explains a revoked sign-in in one sentence and skips the logins", async () => {
  await withHome(async (_home, env) => {
    await using server = fakeOAuth({ user: "bob@outlook.com" });
    const r = await resolveOptions(
      [
        "init",
        "--address",
        "bob@outlook.com",
        "--oauth",
        "microsoft",
        "--oauth-client-id",
        "app",
        ...endpoints(server),
      ],
      env,
      EXTRAS,
    );
    await initCommand(r, { env, interactive: false, print: () => {}, oauth: instant() });
    const mail = await mailSettings(await resolveOptions(["doctor"], env));
    server.revokeAll();
    const results: CheckResult[] = [];
    assert.equal(await checkSignIn(mail.tokens!, (c) => results.push(c)), false);
    assert.equal(results.length, 1);
    assert.equal(results[0].status, "fail");
    assert.equal(
      results[0].title,
      "sign-in: The OAuth2 sign-in for bob@outlook.com has expired or was revoked; sign in again with `mailmeet init --force --oauth microsoft`.",
    );
  });
});

Deno.test("interactive init --oauth asks no servers and no password, and shows the code with the questions", async () => {
  await withHome(async (home, env) => {
    await using server = fakeOAuth({ user: "bob@outlook.com" });
    const io = scriptedIo([
      "bob@outlook.com\n", // address
      "\n", // no host mailbox
      "\n", // user id: bob
      "\n", // no key from the group: create one
    ]);
    const r = await resolveOptions(
      ["init", "--oauth", "microsoft", "--oauth-client-id", "app", ...endpoints(server)],
      env,
      EXTRAS,
    );
    assert.equal(await initCommand(r, { io, interactive: true, env, print: () => {}, oauth: instant() }), 0);
    assert.doesNotMatch(io.written, /Password|Server for/);
    assert.match(io.written, /enter the code ABCD-EFGH/);
    const config = JSON.parse(await Deno.readTextFile(`${home}/.config/mailmeet/config.json`));
    assert.equal(config.inbox, "imaps://bob%40outlook.com@outlook.office365.com:993/INBOX?auth=oauth2");
  });
});
