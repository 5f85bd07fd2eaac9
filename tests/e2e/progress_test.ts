/**
 * The progress display on a real terminal (issue 14, item 5): a stall shows as one instead of a
 * frozen speed, other lines print above the bar and never onto it, no stale bar stays behind, and a
 * broken-off transfer ends in one sentence with human sizes and the next step.
 */
import assert from "node:assert/strict";
import { world } from "../helpers/world.ts";
import { barLines, grownTo, is, onTerminal, piped, size, sparseFile } from "../helpers/people.ts";

const MiB = 1024 * 1024;

Deno.test("[tty] the sender's bar: a stall counts up instead of freezing; the peer leaving prints on its own line; one closing sentence", async () => {
  await using w = await world("maildir");
  const host = w.account("host", "game.test");
  w.host("host", host);
  const out = `${w.dir}/in`;
  const src = `${w.dir}/big.bin`;
  await sparseFile(src, 400);
  await using bob = piped(w, "bob", host, ["receive", "--out", out, "--yes"]);
  await bob.waitFor(is("reply"), 30_000, "bob's host answer");
  await using ann = await onTerminal(w, "ann", host, ["send", src, "--to", "bob"]);
  await grownTo(`${out}/.big.bin.mailmeet-part`, 16 * MiB);
  Deno.kill(bob.pid, "SIGSTOP");
  // Nothing moves: the bar says so, and keeps counting (it is redrawn without new bytes).
  const first = await ann.waitFor(/stalled [3-5] s/, 30_000, "a stall of a few seconds");
  const [bar] = barLines(first);
  assert.match(bar, /^\[#+\.+\]\s+\d+% {2}[\d.]+ MiB \/ 400\.0 MiB {2}stalled [3-5] s$/, first);
  assert.ok(!bar.includes("/s"), "no frozen speed while stalled");
  await ann.waitFor(/stalled ([6-9]|\d\d) s/, 30_000, "the stall counting up");
  // The receiver is gone for good.
  Deno.kill(bob.pid, "SIGKILL");
  Deno.kill(bob.pid, "SIGCONT");
  assert.equal(await ann.exit(60_000), 4, await ann.screen());
  const screen = await ann.screen();
  assert.match(screen, /^\d\d:\d\d:\d\d bob left/m, screen);
  assert.ok(
    !screen.split("\n").some((l) => l.includes("left") && l.includes("[#")),
    `a line shares the bar:\n${screen}`,
  );
  assert.deepEqual(barLines(screen), [], `a stale bar stayed:\n${screen}`);
  assert.match(
    screen.replaceAll("\n", ""),
    /mailmeet: The transfer to bob broke off after [\d.]+ MiB of 400\.0 MiB \([^)]+\); run the same command again once bob runs `mailmeet receive`: it resumes where it stopped\./,
  );
  assert.ok(!/\d{7,}/.test(screen), "sizes in MiB, not raw byte counts");
});

Deno.test("[tty] the receiver resumes: the resume, each verified file and the total print as lines; no stale bar above them", async () => {
  await using w = await world("maildir");
  const host = w.account("host", "game.test");
  w.host("host", host);
  const out = `${w.dir}/in`;
  const src = `${w.dir}/big.bin`;
  await sparseFile(src, 300);
  const part = `${out}/.big.bin.mailmeet-part`;
  {
    // A first try that breaks off: the sender vanishes.
    await using bob = piped(w, "bob", host, ["receive", "--out", out, "--yes"]);
    await bob.waitFor(is("reply"), 30_000, "bob's host answer");
    await using ann = piped(w, "ann", host, ["send", src, "--to", "bob"]);
    await grownTo(part, 16 * MiB);
    ann.kill("SIGKILL");
    assert.equal((await bob.status).code, 4);
    assert.match(
      bob.stderr.join("\n"),
      /^mailmeet: The transfer from ann broke off after [\d.]+ MiB of 300\.0 MiB \([^)]+\); what arrived is kept in .*\.big\.bin\.mailmeet-part: run `mailmeet receive` again and have ann send again to resume\.$/m,
    );
  }
  const kept = await size(part);
  const keptMiB = (kept / MiB).toFixed(1);
  await using bob = await onTerminal(w, "bob", host, ["receive", "--out", out, "--yes"], w.account("bob2"));
  await bob.waitFor(/host@game\.test answered/, 30_000, "bob's host answer");
  await using ann = piped(w, "ann", host, ["send", src, "--to", "bob"], w.account("ann2"));
  assert.equal((await ann.status).code, 0, ann.stderr.join("\n"));
  assert.equal(await bob.exit(30_000), 0, await bob.screen());
  const screen = await bob.screen();
  const lines = screen.split("\n");
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
  const offer = at(/^ann offers 1 file, 300\.0 MiB \([\d.]+ MiB already here from an earlier try\):$/);
  const resume = at(new RegExp(`^resuming big\\.bin at ${keptMiB.replace(".", "\\.")} MiB$`));
  const verified = at(/^big\.bin: 300\.0 MiB, SHA-256 verified$/);
  const total = at(/^received 1 file, 300\.0 MiB, from ann( in \d+ s \([\d.]+ [KMG]iB\/s\))? into /);
  assert.ok(offer >= 0 && resume > offer && verified > resume && total > verified, screen);
  assert.deepEqual(barLines(screen), [], `a stale bar stayed:\n${screen}`);
});
