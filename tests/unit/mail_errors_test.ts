/** Which mail failures are worth another try, and which are the user's to fix. */
import assert from "node:assert/strict";
import { isRetriableError, MailError, tlsOfferGone } from "../../src/mail/errors.ts";

const noStls = () =>
  new MailError(
    "127.0.0.1:10110 does not offer STLS, so the password would cross the network unencrypted; not logging in. Use pop3s:// (port 995), or add ?tls=none only on a network you trust.",
    "tls",
    { command: "CAPA", reason: "no_starttls" },
  );

Deno.test("a server without STARTTLS/STLS at the first connection is a setting to fix, not retried", () => {
  const err = tlsOfferGone(noStls(), false);
  assert.ok(err instanceof MailError && err.code === "tls");
  assert.equal(isRetriableError(err), false);
});

Deno.test("a server that offered STARTTLS/STLS earlier in the run and does not now is retried later (restarting), still in no clear text", () => {
  const err = tlsOfferGone(noStls(), true);
  assert.ok(err instanceof MailError);
  assert.equal(err.code, "temporary");
  assert.equal(isRetriableError(err), true);
  assert.match(err.message, /does not offer STLS.*did earlier \(restarting\?\); not logging in now/);
  assert.doesNotMatch(err.message, /pop3s:\/\//, "no advice to change a setting that was right");
  assert.equal(err.reason, "no_starttls");
});

Deno.test("other failures pass through unchanged", () => {
  const refused = new MailError("wrong password", "auth");
  assert.equal(tlsOfferGone(refused, true), refused);
  const plain = new Error("x");
  assert.equal(tlsOfferGone(plain, true), plain);
});
