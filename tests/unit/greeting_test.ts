import assert from "node:assert/strict";
import { greetingProtocol, silentGreetingHint, wrongProtocol } from "../../src/mail/greeting.ts";

Deno.test("a server's first line tells its protocol", () => {
  assert.equal(greetingProtocol("* OK [CAPABILITY IMAP4rev1] Dovecot ready."), "IMAP");
  assert.equal(greetingProtocol("+OK Dovecot ready."), "POP3");
  assert.equal(greetingProtocol("220 mail.test ESMTP"), "SMTP");
  assert.equal(greetingProtocol("220-mail.test ESMTP"), "SMTP");
  assert.equal(greetingProtocol("SSH-2.0-OpenSSH_9.2"), undefined);
});

Deno.test("another protocol's greeting becomes one sentence naming the server and the usual ports", () => {
  const e = wrongProtocol("127.0.0.1:465", "IMAP", "220 mail.test ESMTP mailmeet test stack")!;
  assert.equal(e.code, "config");
  assert.equal(
    e.message,
    "127.0.0.1:465 is an SMTP server, not IMAP: check the port (IMAP is usually imaps:// on port 993 or imap:// on 143).",
  );
  assert.match(wrongProtocol("h:993", "POP3", "* OK ready")!.message, /is an IMAP server, not POP3/);
  assert.match(wrongProtocol("h:110", "SMTP", "+OK ready")!.message, /is a POP3 server, not SMTP/);
  assert.equal(wrongProtocol("h:993", "IMAP", "* OK ready"), undefined);
  assert.equal(wrongProtocol("h:993", "IMAP", "garbage"), undefined);
});

Deno.test("a clear-text client that got no greeting on a TLS port is told to use TLS", () => {
  assert.match(silentGreetingHint(465, false), /port 465 usually expects TLS from the start/);
  assert.equal(silentGreetingHint(465, true), "");
  assert.equal(silentGreetingHint(587, false), "");
});
