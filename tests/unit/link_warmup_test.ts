import assert from "node:assert/strict";
import { warmLinkCrypto } from "../../src/net/link_warmup.ts";

Deno.test("the link warm-up runs once per process, a step per task: a timer set meanwhile runs before it ends", async () => {
  let done = false;
  const warming = warmLinkCrypto();
  void warming.then(() => done = true);
  const firstTurn = await new Promise<boolean>((r) => setTimeout(() => r(done), 0));
  assert.equal(firstTurn, false, "the warm-up held the event loop for all its steps");
  assert.equal(warmLinkCrypto(), warming, "a second call starts nothing new");
  await warming;
  assert.equal(done, true);
});
