/**
 * A handshake flood against a member's listener (issue 11): 200 connections that connect and say
 * nothing, plus 200 that send garbage, held open while a friend joins. The friend still links; the
 * time it took is printed beside the time the same join takes without the flood in the same run
 * (a ratio, not a timed assertion: the machine is shared).
 */
import assert from "node:assert/strict";
import type { CliProcess } from "../../scripts/lib/cli_process.ts";
import { world } from "../helpers/world.ts";
import { is } from "../helpers/events.ts";

const SILENT = 200;
const GARBAGE = 200;

Deno.test("[maildir] under a flood of 200 silent and 200 garbage connections a friend still links", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const ann = w.peer("ann", w.account("ann"), [hostAcct], ["--timeout", "0"]);
  await ann.waitFor(is("request_sent"), 30_000, "ann asking");
  const port = Number(ann.events.find(is("listening"))!.port);

  // Reference: a join without the flood.
  const calm = w.peer("abe", w.account("abe", "isp-b.test"), [hostAcct]);
  const calmMs = await timeToLink(calm, "abe");

  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < SILENT; i++) held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    const junk = crypto.getRandomValues(new Uint8Array(512));
    for (let i = 0; i < GARBAGE; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(c);
      await c.write(junk).catch(() => {}); // the listener may have cut it already
    }
    const adam = w.peer("adam", w.account("adam", "isp-b.test"), [hostAcct]);
    const floodMs = await timeToLink(adam, "adam");
    await ann.waitFor(is("connected", { peer: "adam" }), 30_000, "ann linked to adam");
    // adam's id sorts before ann's, so of two links the one adam dialed stays: through the flood.
    assert.equal(adam.events.find(is("connected", { peer: "ann" }))!.direction, "out");
    console.log(
      `  request → linked: ${floodMs} ms under the flood, ${calmMs} ms without (${
        (floodMs / calmMs).toFixed(2)
      }×)`,
    );
  } finally {
    for (const c of held) {
      try {
        c.close();
      } catch {
        // closed by the listener already
      }
    }
  }
  assert.ok(!ann.events.some((e) => e.event === "error"), "the flooded member logs no error");
});

/** Milliseconds from the request mailed to the link with ann, by the process's own event times. */
async function timeToLink(p: CliProcess, name: string): Promise<number> {
  const sent = await p.waitFor(is("request_sent"), 30_000, `${name} asking`);
  const linked = await p.waitFor(is("connected", { peer: "ann" }), 30_000, `${name} linked to ann`);
  return Date.parse(String(linked.time)) - Date.parse(String(sent.time));
}
