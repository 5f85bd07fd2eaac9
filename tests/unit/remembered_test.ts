/** The members a node was linked to, kept for its next run: owner-only, forgotten after 12 hours. */
import assert from "node:assert/strict";
import { loadRemembered, REMEMBER_MS, rememberedPath, saveRemembered } from "../../src/cli/remembered.ts";
import { reachAt } from "../../src/protocol/messages.ts";

const NOW = Date.UTC(2026, 10, 27, 20);
const ann = {
  user: "ann",
  host: "203.0.113.7",
  port: 4100,
  linkKey: new Uint8Array(32).fill(3),
  seen: NOW,
  flagged: false,
  ...reachAt("203.0.113.7", 4100),
};

Deno.test("a node remembers whom it was linked to, owner-only, and forgets it after 12 hours", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = rememberedPath(`${dir}/data`, "Bob@ISP.test", "bob");
    assert.deepEqual(loadRemembered(path, NOW), [], "nothing saved yet");
    saveRemembered(path, [ann], NOW);
    const back = loadRemembered(path, NOW + 3600_000);
    assert.deepEqual(back.map((e) => [e.user, e.host, e.port, e.linkKey]), [[
      "ann",
      "203.0.113.7",
      4100,
      ann.linkKey,
    ]]);
    assert.equal((Deno.statSync(path).mode ?? 0) & 0o777, 0o600);
    saveRemembered(path, [], NOW + 60_000);
    assert.equal(
      loadRemembered(path, NOW + 120_000).length,
      1,
      "a node left alone keeps the last group it had",
    );
    assert.deepEqual(loadRemembered(path, NOW + REMEMBER_MS + 1), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
