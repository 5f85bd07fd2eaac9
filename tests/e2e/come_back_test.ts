/**
 * A member coming back (the same person running `join` again): it first dials the members it was
 * linked to last time, goes on at the first link, and asks by mail within seconds when those
 * members are gone (their addresses went with their last run).
 */
import assert from "node:assert/strict";
import type { CliEvent, CliProcess } from "../../scripts/lib/cli_process.ts";
import { world } from "../helpers/world.ts";
import { info, is } from "../helpers/events.ts";

const TRYING = /trying the 1 member\(s\) we were linked to last time/;

async function stop(p: CliProcess): Promise<void> {
  p.kill("SIGTERM");
  await p.status;
}

const at = (e: CliEvent) => Date.parse(String(e.time));

Deno.test("[maildir] a member coming back links again to the one still online, and asks by mail within seconds once that one is gone", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const annAcct = w.account("ann");
  const bobAcct = w.account("bob", "isp-b.test");
  const ann = w.peer("ann", annAcct, [hostAcct]);
  await ann.waitFor(is("request_sent"), 30_000, "ann asking");
  const bob = w.peer("bob", bobAcct, [hostAcct]);
  await bob.waitFor(is("connected", { peer: "ann" }), 30_000, "bob → ann");
  await stop(bob); // remembers ann, last thing before its links close

  const back = w.peer("bob", bobAcct, [hostAcct]);
  await back.waitFor(info(TRYING), 30_000, "bob tries ann first");
  await back.waitFor(is("connected", { peer: "ann" }), 30_000, "bob → ann again");
  await back.waitFor(info(/linked again to members of the last run/), 30_000, "bob says it is back");
  const asked = await back.waitFor(is("request_sent"), 30_000, "bob still tells the host");
  const linked = back.events.find(is("connected", { peer: "ann" }))!;
  assert.ok(at(linked) <= at(asked), "linked before the request went: no reply needed to meet again");
  await stop(back);
  await stop(ann);

  // ann is gone, and her address with her: bob's dial to it goes nowhere.
  const alone = w.peer("bob", bobAcct, [hostAcct]);
  const trying = await alone.waitFor(info(TRYING), 30_000, "bob tries ann first");
  const mailed = await alone.waitFor(is("request_sent"), 30_000, "bob asks by mail");
  // The window is 3 s (COME_BACK_WINDOW_MS); it was 10 s, which every return to a changed address paid.
  assert.ok(
    at(mailed) - at(trying) < 8_000,
    `asked ${at(mailed) - at(trying)} ms after trying the last run's member`,
  );
});
