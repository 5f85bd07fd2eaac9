import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { providerFor, PROVIDERS, suggestServers, withCredentials } from "../../src/cli/providers.ts";
import { serverUrl } from "../../src/cli/commands/init.ts";

Deno.test("well-known providers get their published servers and ports", () => {
  const gmail = suggestServers("Bob@Gmail.com");
  assert.equal(gmail.provider?.name, "Gmail");
  assert.equal(gmail.smtp, "smtps://smtp.gmail.com:465");
  assert.equal(gmail.inbox, "imaps://imap.gmail.com:993/INBOX");
  assert.match(gmail.note!, /app password/);
  const outlook = suggestServers("bob@hotmail.com");
  assert.equal(outlook.smtp, "smtp://smtp-mail.outlook.com:587");
  assert.equal(suggestServers("bob@gmx.de").inbox, "imaps://imap.gmx.net:993/INBOX");
  assert.match(suggestServers("bob@gmx.de").note!, /IMAP/);
});

Deno.test("iCloud logs in to IMAP with the name before @", () => {
  const s = suggestServers("bob@icloud.com");
  assert.equal(s.login, "bob");
});

Deno.test("an unknown domain gets the common names on the usual TLS ports, marked as a guess", () => {
  const s = suggestServers("bob@isp-b.test");
  assert.equal(s.provider, undefined);
  assert.equal(s.smtp, "smtp://smtp.isp-b.test:587");
  assert.equal(s.inbox, "imaps://imap.isp-b.test:993/INBOX");
});

Deno.test("every provider entry makes URLs the mail layer accepts", () => {
  for (const p of PROVIDERS) {
    for (const d of p.domains) assert.equal(providerFor(`x@${d}`), p, d);
    const s = suggestServers(`someone@${p.domains[0]}`);
    for (const url of [s.smtp, s.inbox]) {
      const a = parseAccount(withCredentials(url, "someone@x", "p@ss:w/rd"));
      assert.equal(a.password, "p@ss:w/rd", url);
      assert.equal(a.user, "someone@x", url);
    }
  }
});

Deno.test("credentials are percent-encoded into a URL, and a URL with a user is left alone", () => {
  assert.equal(
    withCredentials("imaps://imap.x.test:993/INBOX", "bob@x.test", "a b%c"),
    "imaps://bob%40x.test:a%20b%25c@imap.x.test:993/INBOX",
  );
  assert.equal(
    withCredentials("imaps://me:pw@imap.x.test/INBOX", "bob", "other"),
    "imaps://me:pw@imap.x.test/INBOX",
  );
  assert.equal(withCredentials("maildir:///tmp/spool", "bob", "pw"), "maildir:///tmp/spool");
});

Deno.test("a typed host:port becomes a URL with the usual scheme for that port", () => {
  assert.equal(serverUrl("smtp.x.test:465", "smtp"), "smtps://smtp.x.test:465");
  assert.equal(serverUrl("smtp.x.test", "smtp"), "smtp://smtp.x.test:587");
  assert.equal(serverUrl("imap.x.test", "inbox"), "imaps://imap.x.test:993/INBOX");
  assert.equal(serverUrl("imap.x.test:143", "inbox"), "imap://imap.x.test:143/INBOX");
  assert.equal(serverUrl("pop.x.test:995", "inbox"), "pop3s://pop.x.test:995");
  assert.equal(serverUrl("pop3://pop.x.test", "inbox"), "pop3://pop.x.test");
  assert.throws(() => serverUrl("not a host", "smtp"), /neither a URL nor host:port/);
});
