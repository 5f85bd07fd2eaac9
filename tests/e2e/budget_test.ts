/**
 * --mail-budget end to end: a host near its budget leaves requests in the mailbox instead of
 * answering, says so once, and the count survives a restart (it is kept in the data folder).
 */
import assert from "node:assert/strict";
import { sealToText } from "../../src/protocol/envelope.ts";
import { parseNetworkKey } from "../../src/protocol/keys.ts";
import { world } from "../helpers/world.ts";
import { request } from "../helpers/events.ts";

const MARKER = "mailmeet rendezvous";

Deno.test("[maildir] a host at its --mail-budget leaves requests waiting, also after a restart, and answers them once the budget allows", async () => {
  await using w = await world("maildir");
  const key = await parseNetworkKey(w.key);
  const hostAcct = w.account("host", "game.test");
  const askers = Array.from({ length: 5 }, (_, i) => w.account(`asker${i}`));
  for (let i = 0; i < 5; i++) {
    await w.send(askers[i], [hostAcct], MARKER, sealToText(key, request(`user${i}`, askers[i])));
  }
  const host = (budget: number) =>
    w.run([
      "host",
      ...w.common(hostAcct),
      "--db",
      `${w.dir}/h.db`,
      "--once",
      "--mail-budget",
      String(budget),
    ]);
  const answered = async () =>
    (await Promise.all(askers.map((a) => w.raw(a)))).filter((m) => m.length > 0).length;

  // A budget of 4: replies may fill 90 % of it (3), introductions 70 % (none fit after the replies).
  const first = await host(4);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(await answered(), 3);
  assert.equal((await w.raw(hostAcct)).length, 2, "two requests wait in the mailbox");
  const held = first.stdout.split("\n").filter((l) => l.includes('"budget_held"'));
  assert.equal(held.filter((l) => l.includes('"kind":"reply"')).length, 1, "said once, not once per request");
  // Read together, the three are answered in one round: when the fourth is read none has gone yet.
  assert.match(
    held.join("\n"),
    /0 of 4 mails sent in the last 24 hours \(--mail-budget\), and 3 replies are about to go/,
  );

  const again = await host(4);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(await answered(), 3, "a restart does not reset the count");

  const more = await host(10);
  assert.equal(more.code, 0, more.stderr);
  assert.equal(await answered(), 5, "with room in the budget the waiting requests are answered");
  assert.equal((await w.raw(hostAcct)).length, 0);
});
