/** doctor's advice comes from the error's type, code and reason, never from the words of its message. */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { connectError, MailError } from "../../src/mail/errors.ts";
import { OAuthError } from "../../src/oauth/errors.ts";
import {
  connectFix,
  listenFix,
  loginFix,
  portMappingFix,
  roundTripFix,
  signInFix,
  tlsFix,
} from "../../src/cli/doctor/fixes.ts";

const imap = parseAccount("imap://bob:secret@imap.example.test:143/INBOX");
const smtpClear = parseAccount("smtp://bob:secret@smtp.example.test:587?tls=none");
const PORTS = "the usual ports";

Deno.test("doctor says --tls-ca for a certificate the TLS library refused", () => {
  const e = connectError("imap.example.test:993", new Error("invalid peer certificate: UnknownIssuer"));
  assert.equal(e.reason, "untrusted_certificate");
  assert.match(
    tlsFix(imap, e, PORTS),
    /^If the server uses a private CA, pass its certificate with --tls-ca FILE/,
  );
});

Deno.test("doctor does not say --tls-ca for an error that only mentions a certificate in its words", () => {
  const e = new MailError("imap.example.test:143 said something about a certificate.", "protocol");
  assert.equal(
    tlsFix(imap, e, PORTS),
    `The port may expect the other TLS mode or another protocol: ${PORTS}.`,
  );
});

Deno.test("doctor says to use the TLS port when the server offers no STARTTLS", () => {
  const e = new MailError("no STARTTLS here", "tls", { reason: "no_starttls" });
  assert.equal(
    tlsFix(imap, e, PORTS),
    "Use the TLS port instead (imaps:// on 993); ?tls=none sends the password in clear and is only for a network you trust.",
  );
});

Deno.test("doctor says to remove ?tls=none when the server wants encryption before the login", () => {
  const e = new MailError("no login on a clear connection", "auth", { reason: "needs_encryption" });
  assert.equal(
    loginFix(smtpClear, "bob@example.test", e),
    "Remove ?tls=none from the URL: the server wants the connection encrypted before the login.",
  );
});

Deno.test("doctor gives password advice for a refused login, whatever its message says", () => {
  const e = new MailError("refused; the words tls=none and without encryption are only words", "auth");
  assert.match(loginFix(smtpClear, "bob@example.test", e), /^Check the login name \(bob\) and the password/);
});

Deno.test("doctor's other advice follows the error's type and code", () => {
  assert.match(
    connectFix(new Deno.errors.ConnectionRefused("x"), "inbox", 143, PORTS),
    /^Check the port in --inbox/,
  );
  assert.match(connectFix(new Error("x"), "inbox", 143, PORTS), /may block port 143/);
  assert.match(roundTripFix(new MailError("x", "rejected")), /^The server refused the message/);
  assert.match(roundTripFix(new MailError("x", "temporary")), /^Run doctor again/);
  assert.match(signInFix(new OAuthError("x", "revoked")), /^A sign-in ends when/);
  assert.match(signInFix(new OAuthError("x", "unreachable")), /^Check the network/);
  assert.match(listenFix(new Deno.errors.AddrInUse("x")), /^Another program/);
  assert.match(listenFix(new Error("x")), /^Check --listen/);
});

Deno.test("doctor names carrier-grade NAT only when the port mapping says the router is behind another NAT", () => {
  assert.match(portMappingFix({ ok: false, reason: "x", code: "double_nat" }) ?? "", /carrier-grade NAT/);
  assert.equal(portMappingFix({ ok: false, reason: "behind another NAT (carrier-grade NAT)" }), undefined);
});
