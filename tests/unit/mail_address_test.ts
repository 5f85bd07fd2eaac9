import assert from "node:assert/strict";
import { isMailAddress } from "../../src/mail/address.ts";

Deno.test("an e-mail address: plain, plus/subaddress, IDN, punycode and RFC 5322 atext are accepted", () => {
  for (
    const a of [
      "bob@isp-b.test",
      "Bob.Smith@Example.ORG",
      "bob+mailmeet@example.org",
      "bob-games@example.org",
      "jörg@bücher.example",
      "用户@例子.广告",
      "bob@xn--bcher-kva.example",
      "o'brien@example.ie",
      "a!#$%&'*/=?^_`{|}~@x",
      "a/b@x",
      "a(b)@x",
      "a:b@x",
      "bob@[192.0.2.1]",
      "a@localhost",
    ]
  ) {
    assert.ok(isMailAddress(a), a);
  }
});

Deno.test("not an e-mail address: no @, two @, empty sides, white space, and list or header punctuation", () => {
  for (
    const a of [
      "",
      "bob",
      "bob@",
      "@example.org",
      "a@b@c",
      "bob @example.org",
      "bob@example.org ",
      "bob\t@x",
      "bob\n@x",
      "Bob <bob@x>",
      "<bob@x>",
      '"bob"@x',
      "a,b@x",
      "a;b@x",
      "a@x,b@y",
    ]
  ) {
    assert.ok(!isMailAddress(a), JSON.stringify(a));
  }
});
