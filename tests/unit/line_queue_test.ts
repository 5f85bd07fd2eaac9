import assert from "node:assert/strict";
import { Mux, type MuxStream } from "../../src/net/mux.ts";
import { writeLine } from "../../src/net/line_queue.ts";
import { ends } from "../helpers/mem_pipe.ts";

/** Lets queued microtasks and timers run (in-memory pipes settle within a few turns). */
const settle = () => new Promise((r) => setTimeout(r, 0));
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await settle();
};

Deno.test("writeLine keeps every line, in order, when they outrun the stream's window (no busy refusals)", async () => {
  const [x, y] = ends();
  const accepted = Promise.withResolvers<MuxStream>();
  const a = new Mux(x, { peer: "b", window: 1024 });
  const b = new Mux(y, { peer: "a", window: 1024, onStream: (s) => accepted.resolve(s) });
  const s = a.open("lines");
  const sent = Array.from({ length: 40 }, (_, i) => ({ i, pad: "x".repeat(100) }));
  for (const line of sent) writeLine(s, line); // ~4.5 KiB at once into a 1 KiB window
  await settle();
  const t = await accepted.promise;
  let text = "";
  while (text.split("\n").length <= sent.length) {
    // A lost line would leave this read waiting: give up after a few turns instead of hanging.
    const chunk = await Promise.race([t.read(), turns(20).then(() => "stalled" as const)]);
    assert.ok(chunk !== "stalled", `lines stopped coming after ${text.split("\n").length - 1}`);
    assert.ok(chunk, "the stream ended early");
    text += new TextDecoder().decode(chunk);
  }
  assert.deepEqual(text.trimEnd().split("\n").map((l) => JSON.parse(l)), sent);
  await Promise.all([a.close(), b.close()]);
});
