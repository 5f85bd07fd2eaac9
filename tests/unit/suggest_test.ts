import assert from "node:assert/strict";
import { closest, didYouMean, editDistance } from "../../src/cli/suggest.ts";

Deno.test("edit distance counts a swap of neighbours as one edit", () => {
  assert.equal(editDistance("jion", "join"), 1);
  assert.equal(editDistance("adress", "address"), 1);
  assert.equal(editDistance("recieve", "receive"), 1);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("same", "same"), 0);
});

Deno.test("a typo gets the closest known word; a word far from all gets none", () => {
  const commands = ["join", "host", "table", "keygen", "chat", "send", "receive", "tunnel", "init", "doctor"];
  assert.equal(closest("jion", commands), "join");
  assert.equal(closest("recieve", commands), "receive");
  assert.equal(closest("doctr", commands), "doctor");
  assert.equal(closest("tunel", commands), "tunnel");
  assert.equal(closest("frobnicate", commands), undefined);
  assert.equal(closest("zz", commands), undefined);
  // A start that fits exactly one word counts too.
  assert.equal(closest("verb", ["verbose", "version"]), "verbose");
  assert.equal(closest("ver", ["verbose", "version"]), undefined);
  assert.equal(didYouMean("adress", ["address", "advertise"], (w) => `--${w}`), " (did you mean --address?)");
  assert.equal(didYouMean("xyzzy", ["address"]), "");
});
