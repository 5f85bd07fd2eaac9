/**
 * The OAuth2 path as a user runs it: `mailmeet init --oauth` (the bundle, as a process) signs in
 * through a local fake authorization server's device flow, then `mailmeet doctor` logs in to the
 * real Postfix + Dovecot with the token (Dovecot's oauth2 passdb asks the same fake server) and
 * sends itself a mail; after the sign-in is revoked, doctor says so in one sentence.
 */
import assert from "node:assert/strict";
import { ensureBundle, runCli } from "../../scripts/lib/cli_process.ts";
import { DENO_PERMISSIONS } from "../../src/cli/permissions.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { fakeOAuth } from "../helpers/fake_oauth.ts";
import { mailStack } from "../helpers/mailstack.ts";

await ensureBundle();

interface Check {
  event: string;
  check: string;
  status: string;
  title: string;
}

Deno.test("init --oauth signs in by the device flow, and doctor logs in, sends and reads with the token", async () => {
  await using stack = await mailStack();
  const user = stack.freshAddress("cli", stack.oauthDomain);
  await using server = fakeOAuth({
    port: stack.oauthIntrospectPort,
    user,
    intervalS: 1,
    pollScript: ["pending"],
  });
  const home = await Deno.makeTempDir({ prefix: "mailmeet-oauth-home-" });
  const env = { HOME: home, XDG_CONFIG_HOME: "", XDG_DATA_HOME: "" };
  const opts = { permissions: DENO_PERMISSIONS };
  try {
    const init = await runCli(
      [
        "init",
        "--address",
        user,
        "--oauth",
        "lab",
        "--oauth-client-id",
        "mailmeet-test",
        "--oauth-device-url",
        server.deviceUrl,
        "--oauth-token-url",
        server.tokenUrl,
        "--oauth-scope",
        "mail offline_access",
        "--smtp",
        `smtps://${stack.host}:${stack.ports.smtps}`,
        "--inbox",
        `imaps://${stack.host}:${stack.ports.imaps}/INBOX`,
        "--tls-ca",
        stack.caFile,
        "--key",
        generateKeyText(),
      ],
      env,
      opts,
    );
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /enter the code ABCD-EFGH/);
    assert.match(init.stdout, /Signed in with OAuth2 \(lab\)/);

    const doctor = async () => {
      const out = await runCli(["doctor", "--json", "--timeout", "20", "--listen", "127.0.0.1:0"], env, opts);
      const checks = new Map<string, Check>();
      for (const line of out.stdout.trim().split("\n").filter(Boolean)) {
        const e = JSON.parse(line);
        if (e.event === "check") checks.set(e.check, e);
      }
      return { code: out.code, checks };
    };
    const good = await doctor();
    for (const name of ["oauth", "smtp_login", "inbox_login", "roundtrip"]) {
      assert.equal(good.checks.get(name)?.status, "ok", `${name}: ${JSON.stringify(good.checks.get(name))}`);
    }

    server.revokeAll();
    const bad = await doctor();
    assert.notEqual(bad.code, 0);
    assert.equal(
      bad.checks.get("oauth")?.title,
      `sign-in: The OAuth2 sign-in for ${user} has expired or was revoked; sign in again with \`mailmeet init --force --oauth lab\`.`,
    );
    assert.equal(bad.checks.get("smtp_login")?.status, "skip");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
