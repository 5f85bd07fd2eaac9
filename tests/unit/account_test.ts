import assert from "node:assert/strict";
import { durationParam, parseAccount, redact } from "../../src/mail/account.ts";
import { MailError } from "../../src/mail/errors.ts";

Deno.test("account URLs pick implicit TLS for the s-schemes and STARTTLS otherwise", () => {
  assert.equal(parseAccount("imaps://u:p@h/INBOX").tls, "implicit");
  assert.equal(parseAccount("pop3s://u:p@h").tls, "implicit");
  assert.equal(parseAccount("smtps://u:p@h").tls, "implicit");
  assert.equal(parseAccount("imap://u:p@h").tls, "starttls");
  assert.equal(parseAccount("pop3://u:p@h").tls, "starttls");
  assert.equal(parseAccount("smtp://u:p@h").tls, "starttls");
  assert.equal(parseAccount("imap://u:p@h?tls=none").tls, "none");
});

Deno.test("account URLs fill in the usual ports", () => {
  assert.deepEqual(
    ["smtp", "smtps", "imap", "imaps", "pop3", "pop3s"].map((s) => parseAccount(`${s}://h`).port),
    [587, 465, 143, 993, 110, 995],
  );
  assert.equal(parseAccount("imaps://h:10993").port, 10993);
});

Deno.test("account URLs percent-decode user and password", () => {
  const a = parseAccount("imaps://bob%40isp-b.test:p%40ss%3Aw%2Frd@127.0.0.1:993/Other%20Box");
  assert.equal(a.user, "bob@isp-b.test");
  assert.equal(a.password, "p@ss:w/rd");
  assert.equal(a.path, "Other Box");
  assert.equal(parseAccount("imap://h").path, "INBOX");
});

Deno.test("redact never shows the password", () => {
  const text = redact("imaps://bob%40x.test:hunter2@h:993/INBOX");
  assert.ok(!text.includes("hunter2"));
  assert.ok(text.includes("bob%40x.test"));
  assert.ok(!redact("not a url://a:hunter2@b").includes("hunter2"));
});

Deno.test("bad URLs are config errors naming the problem, without the password", () => {
  for (const bad of ["ftp://u:secretpw@h", "imaps://", "maildir:///", "nonsense", "imap://h?tls=maybe"]) {
    assert.throws(() => parseAccount(bad), (e: unknown) => {
      assert.ok(e instanceof MailError);
      assert.equal(e.code, "config");
      assert.ok(!e.message.includes("secretpw"));
      return true;
    });
  }
});

Deno.test("maildir URLs name a spool folder", () => {
  const a = parseAccount("maildir:///tmp/some%20spool");
  assert.equal(a.scheme, "maildir");
  assert.equal(a.path, "/tmp/some spool");
});

Deno.test("duration parameters accept ms, s and m", () => {
  assert.equal(durationParam(parseAccount("pop3://h?poll=250ms"), "poll", 1), 250);
  assert.equal(durationParam(parseAccount("pop3://h?poll=2s"), "poll", 1), 2000);
  assert.equal(durationParam(parseAccount("pop3://h?poll=1m"), "poll", 1), 60000);
  assert.equal(durationParam(parseAccount("pop3://h?poll=3"), "poll", 1), 3000);
  assert.equal(durationParam(parseAccount("pop3://h"), "poll", 7), 7);
  assert.throws(() => durationParam(parseAccount("pop3://h?poll=soon"), "poll", 1), MailError);
});
