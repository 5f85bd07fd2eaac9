/**
 * OAuth2 logins against the real Dovecot and Postfix: the stack's oauth.test accounts have no
 * password; Dovecot's oauth2 passdb asks the introspection endpoint of a local fake authorization
 * server whether a bearer token is good. Tokens come from that server's device flow, as
 * `mailmeet init --oauth` gets them. Postfix's SMTP AUTH goes through Dovecot SASL.
 */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { MailError } from "../../src/mail/errors.ts";
import { openImapMailbox } from "../../src/mail/imap.ts";
import { openPop3Mailbox } from "../../src/mail/pop3.ts";
import { openSender } from "../../src/mail/smtp.ts";
import { ImapClient } from "../../src/mail/imap/client.ts";
import { Pop3Session } from "../../src/mail/pop3/session.ts";
import { pollForToken, requestDeviceCode } from "../../src/oauth/device_flow.ts";
import type { OAuthClient } from "../../src/oauth/providers.ts";
import { StoredTokenSource } from "../../src/oauth/token_source.ts";
import type { StoredSignIn } from "../../src/oauth/token_store.ts";
import { type FakeOAuth, fakeOAuth } from "../helpers/fake_oauth.ts";
import { type MailStack, mailStack } from "../helpers/mailstack.ts";

const TIMEOUTS = { connectTimeoutMs: 10_000, greetingTimeoutMs: 10_000, commandTimeoutMs: 10_000 };

/** The device flow against the fake server, with a clock that only moves when it "waits". */
async function signIn(server: FakeOAuth, user: string, clock: { now: number }): Promise<StoredSignIn> {
  const client: OAuthClient = {
    provider: "test",
    clientId: "mailmeet-test",
    deviceUrl: server.deviceUrl,
    tokenUrl: server.tokenUrl,
    scope: "mail offline_access",
  };
  const deps = {
    now: () => clock.now,
    sleep: (ms: number) => Promise.resolve(void (clock.now += ms)),
  };
  const tokens = await pollForToken(client, await requestDeviceCode(client, deps), deps);
  return { client, user, tokens };
}

function source(s: StoredSignIn, clock: { now: number }): StoredTokenSource {
  return new StoredTokenSource(s, "/unused", { now: () => clock.now, save: () => Promise.resolve() });
}

async function setup(stack: MailStack, name: string, pollScript: ("pending" | "slow_down")[] = []) {
  const user = stack.freshAddress(name, stack.oauthDomain);
  const server = fakeOAuth({ port: stack.oauthIntrospectPort, user, pollScript });
  const clock = { now: Date.now() };
  try {
    const tokens = source(await signIn(server, user, clock), clock);
    return { user, server, clock, tokens };
  } catch (err) {
    await server[Symbol.asyncDispose]();
    throw err;
  }
}

function message(to: string, subject: string): string {
  return `From: tester@isp-a.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: ${
    new Date().toUTCString()
  }\r\n` +
    `Message-ID: <${crypto.randomUUID()}@isp-a.test>\r\n\r\nhello\r\n`;
}

Deno.test("IMAP logs in to Dovecot with OAUTHBEARER and a token from the device flow", async () => {
  await using stack = await mailStack();
  const { user, server, tokens } = await setup(stack, "imap", ["pending", "slow_down", "pending"]);
  await using _server = server;
  const marker = `[oauth-${crypto.randomUUID().slice(0, 8)}]`;
  await stack.deliverRaw(user, message(user, `${marker} hello`));
  for (const kind of ["imap", "imaps"]) {
    await using box = await openImapMailbox(parseAccount(stack.oauthUrl(kind, user)), {
      caCerts: [stack.caPem],
      tokens,
    });
    const found = await box.list(marker);
    assert.equal(found.length, 1, kind);
  }
  // Dovecot asked the introspection endpoint with the token we hold.
  const asked = server.requests.filter((r) => r.path === "/introspect").map((r) => r.form.token);
  assert.ok(asked.includes(await tokens.accessToken()));
});

Deno.test("POP3 logs in to Dovecot with OAUTHBEARER and a token from the device flow", async () => {
  await using stack = await mailStack();
  const { user, server, tokens } = await setup(stack, "pop3");
  await using _server = server;
  const marker = `[oauth-${crypto.randomUUID().slice(0, 8)}]`;
  await stack.deliverRaw(user, message(user, `${marker} hello`));
  for (const kind of ["pop3", "pop3s"]) {
    await using box = await openPop3Mailbox(parseAccount(stack.oauthUrl(kind, user)), {
      caCerts: [stack.caPem],
      tokens,
    });
    assert.equal((await box.list(marker)).length, 1, kind);
  }
});

Deno.test("SMTP sends through Postfix with XOAUTH2 (nodemailer OAuth2, checked by Dovecot SASL)", async () => {
  await using stack = await mailStack();
  const { user, server, tokens } = await setup(stack, "smtp");
  await using _server = server;
  const to = stack.freshAddress("rcpt");
  for (const kind of ["submission", "smtps"]) {
    await using sender = openSender(stack.oauthUrl(kind, user), { caCerts: [stack.caPem], tokens });
    const info = await sender.send({ from: user, to: [to], subject: `oauth ${kind}`, text: "hi\n" });
    assert.match(info.response, /^250 /);
  }
  await stack.waitForMessages(to, 2);
});

Deno.test("an access token past its expiry is refreshed before the login, and the new one is accepted", async () => {
  await using stack = await mailStack();
  const { user, server, clock, tokens } = await setup(stack, "refresh");
  await using _server = server;
  const old = await tokens.accessToken();
  clock.now += 2 * 3600_000; // the fake issues one-hour tokens
  server.activeTokens.delete(old);
  await using box = await openImapMailbox(parseAccount(stack.oauthUrl("imaps", user)), {
    caCerts: [stack.caPem],
    tokens,
  });
  assert.deepEqual(await box.list("[nothing]"), []);
  assert.notEqual(await tokens.accessToken(), old);
  assert.equal(server.requests.filter((r) => r.form.grant_type === "refresh_token").length, 1);
});

Deno.test("a revoked sign-in is refused by IMAP, POP3 and SMTP with one sentence saying to sign in again", async () => {
  await using stack = await mailStack();
  const { user, server, tokens } = await setup(stack, "revoked");
  await using _server = server;
  server.revokeAll();
  const revoked = (e: unknown) =>
    e instanceof MailError && e.code === "auth" &&
    /^The OAuth2 sign-in for t-.*@oauth\.test has expired or was revoked; sign in again with `mailmeet init --force --oauth test`/
      .test(e.message);
  await assert.rejects(
    ImapClient.connect(parseAccount(stack.oauthUrl("imaps", user)), {
      ...TIMEOUTS,
      caCerts: [stack.caPem],
      tokens,
    }),
    revoked,
  );
  await assert.rejects(
    Pop3Session.open(parseAccount(stack.oauthUrl("pop3s", user)), {
      ...TIMEOUTS,
      caCerts: [stack.caPem],
      tokens,
    }),
    revoked,
  );
  await using sender = openSender(stack.oauthUrl("smtps", user), { caCerts: [stack.caPem], tokens });
  await assert.rejects(
    sender.send({ from: user, to: [stack.freshAddress("rcpt")], subject: "x", text: "x\n" }),
    revoked,
  );
});

Deno.test("a token the server refuses, with no refresh possible, is an auth error naming OAuth2", async () => {
  await using stack = await mailStack();
  const user = stack.freshAddress("bogus", stack.oauthDomain);
  await using _server = fakeOAuth({ port: stack.oauthIntrospectPort, user });
  const tokens = { accessToken: () => Promise.resolve("not-a-token-the-server-knows") };
  await assert.rejects(
    ImapClient.connect(parseAccount(stack.oauthUrl("imaps", user)), {
      ...TIMEOUTS,
      caCerts: [stack.caPem],
      tokens,
    }),
    (e: unknown) =>
      e instanceof MailError && e.code === "auth" && /refused the OAuth2 access token/.test(e.message) &&
      !e.message.includes("not-a-token"),
  );
});

Deno.test("the oauth domain refuses the shared password, and password accounts still log in", async () => {
  await using stack = await mailStack();
  const oauthUser = stack.freshAddress("nopass", stack.oauthDomain);
  await assert.rejects(
    ImapClient.connect(parseAccount(stack.url("imaps", oauthUser)), { ...TIMEOUTS, caCerts: [stack.caPem] }),
    (e: unknown) => e instanceof MailError && e.code === "auth",
  );
  const client = await ImapClient.connect(parseAccount(stack.url("imaps", stack.freshAddress("pw"))), {
    ...TIMEOUTS,
    caCerts: [stack.caPem],
  });
  await client.logout(5_000);
});
