import assert from "node:assert/strict";
import {
  bearerAbort,
  oauthBearerResponse,
  parseBearerFailure,
  pickBearerMechanism,
  saslName,
  xoauth2Response,
} from "../../src/mail/sasl.ts";

const decode = (b64: string) => new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));

Deno.test("XOAUTH2 sends user, bearer token and two ^A in base64", () => {
  // The example of Google's XOAUTH2 protocol page.
  assert.equal(
    xoauth2Response("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==",
  );
});

Deno.test("OAUTHBEARER sends the RFC 7628 gs2 header, host, port and bearer token", () => {
  // RFC 7628 §4.1's example, with our authorization identity.
  const text = decode(
    oauthBearerResponse(
      "user@example.com",
      "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
      "server.example.com",
      143,
    ),
  );
  assert.equal(
    text,
    "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01",
  );
});

Deno.test("OAUTHBEARER escapes commas and equals signs in the user name (RFC 5801 saslname)", () => {
  assert.equal(saslName("a,b=c"), "a=2Cb=3Dc");
  assert.equal(decode(oauthBearerResponse("a,b=c@x", "t")), "n,a=a=2Cb=3Dc@x,\x01auth=Bearer t\x01\x01");
});

Deno.test("after a failure challenge OAUTHBEARER answers ^A and XOAUTH2 an empty line", () => {
  assert.equal(decode(bearerAbort("OAUTHBEARER")), "\x01");
  assert.equal(bearerAbort("XOAUTH2"), "");
});

Deno.test("a server's failure challenge is read for its status and scope", () => {
  const challenge = btoa(
    JSON.stringify({ status: "401", schemes: "bearer", scope: "https://mail.google.com/" }),
  );
  assert.deepEqual(parseBearerFailure(challenge), {
    status: "401",
    schemes: "bearer",
    scope: "https://mail.google.com/",
  });
  assert.equal(parseBearerFailure("not base64 json"), undefined);
  assert.equal(parseBearerFailure(btoa("[1]")), undefined);
});

Deno.test("OAUTHBEARER is preferred over XOAUTH2 and neither is picked when not offered", () => {
  assert.equal(pickBearerMechanism(new Set(["PLAIN", "XOAUTH2", "OAUTHBEARER"])), "OAUTHBEARER");
  assert.equal(pickBearerMechanism(new Set(["PLAIN", "XOAUTH2"])), "XOAUTH2");
  assert.equal(pickBearerMechanism(new Set(["PLAIN", "LOGIN"])), undefined);
});
