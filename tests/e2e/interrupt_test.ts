/**
 * Ctrl-C and exit codes (issue 14, item 1): every command stops at once on Ctrl-C and exits 130 with
 * one sentence, never 0 for work not done; a transfer cut by Ctrl-C tells the other side and keeps
 * what arrived for a resume. On a real terminal (tmux) where it is about what a person does.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { world } from "../helpers/world.ts";
import { grownTo, is, onTerminal, piped, size, sparseFile } from "../helpers/people.ts";

const MiB = 1024 * 1024;

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path);
  const buf = new Uint8Array(MiB);
  for (let n = await f.read(buf); n !== null; n = await f.read(buf)) h.update(buf.subarray(0, n));
  return h.digest("hex");
}

const noTrace = (text: string) => assert.ok(!/^\s+at /m.test(text), `a stack trace:\n${text}`);

Deno.test("[tty] Ctrl-C at the Accept? question ends receive at once with 130, and the sender hears it (exit 4)", async () => {
  await using w = await world("maildir");
  const host = w.account("host", "game.test");
  w.host("host", host);
  const out = `${w.dir}/in`;
  const src = `${w.dir}/song.bin`;
  await sparseFile(src, 1);
  await using bob = await onTerminal(w, "bob", host, ["receive", "--out", out]);
  await bob.waitFor(/answered: nobody else yet/, 30_000, "bob's host answer");
  await using ann = piped(w, "ann", host, ["send", src, "--to", "bob"]);
  await bob.waitFor(/Accept\? \[y\/N\] *$/, 30_000, "the question");
  await bob.keys("C-c");
  assert.equal(await bob.exit(10_000), 130, await bob.screen());
  const screen = await bob.screen();
  assert.match(screen, /^mailmeet: Interrupted before the transfer from ann began; nothing was received\.$/m);
  noTrace(screen);
  assert.equal((await ann.status).code, 4, ann.stderr.join("\n"));
  assert.match(
    ann.stderr.join("\n"),
    /^mailmeet: bob did not answer the offer \(the receiver was interrupted\); nothing was sent\.$/m,
  );
  assert.deepEqual(await Array.fromAsync(Deno.readDir(out)), [], "nothing was written");
});

Deno.test("[tty] Ctrl-C mid-transfer on the receiver: 130, what arrived is kept and named, the sender is told (exit 4)", async () => {
  await using w = await world("maildir");
  const host = w.account("host", "game.test");
  w.host("host", host);
  const out = `${w.dir}/in`;
  const src = `${w.dir}/big.bin`;
  await sparseFile(src, 400);
  await using bob = await onTerminal(w, "bob", host, ["receive", "--out", out, "--yes"]);
  await bob.waitFor(/answered: nobody else yet/, 30_000, "bob's host answer");
  await using ann = piped(w, "ann", host, ["send", src, "--to", "bob"]);
  const part = `${out}/.big.bin.mailmeet-part`;
  await grownTo(part, 16 * MiB);
  // Freeze the sender: the transfer is now surely in the middle, and stays there.
  Deno.kill(ann.pid, "SIGSTOP");
  try {
    await bob.waitFor(/stalled \d+ s/, 30_000, "the stalled bar");
    await bob.keys("C-c");
    assert.equal(await bob.exit(10_000), 130, await bob.screen());
  } finally {
    Deno.kill(ann.pid, "SIGCONT");
  }
  const screen = (await bob.screen()).replaceAll("\n", "");
  const kept = await size(part);
  assert.ok(kept >= 16 * MiB && kept < 400 * MiB, `kept ${kept} bytes`);
  assert.match(
    screen,
    /mailmeet: Interrupted after [\d.]+ MiB of 400\.0 MiB from ann; what arrived is kept in .*\.big\.bin\.mailmeet-part: run `mailmeet receive` again and have ann send again to resume\./,
  );
  noTrace(screen);
  assert.equal((await ann.status).code, 4, ann.stderr.join("\n"));
  assert.match(
    ann.stderr.join("\n"),
    /^mailmeet: The transfer to bob broke off after [\d.]+ MiB of 400\.0 MiB \(.+\); run the same command again once bob runs `mailmeet receive`: it resumes where it stopped\.$/m,
  );
  await assert.rejects(Deno.stat(`${out}/big.bin`), "nothing passed off as complete");
});

Deno.test("[tty] Ctrl-C mid-transfer on the sender: 130; the receiver keeps what arrived and says to run receive again; the retry resumes", async () => {
  await using w = await world("maildir");
  const host = w.account("host", "game.test");
  w.host("host", host);
  const out = `${w.dir}/in`;
  const src = `${w.dir}/big.bin`;
  await sparseFile(src, 400);
  const part = `${out}/.big.bin.mailmeet-part`;
  {
    await using bob = piped(w, "bob", host, ["receive", "--out", out, "--yes"]);
    await bob.waitFor(is("reply"), 30_000, "bob's host answer");
    await using ann = await onTerminal(w, "ann", host, ["send", src, "--to", "bob"]);
    await grownTo(part, 16 * MiB);
    // Freeze the receiver: the sender is now surely in the middle of sending.
    Deno.kill(bob.pid, "SIGSTOP");
    try {
      await ann.waitFor(/stalled \d+ s/, 30_000, "the stalled bar");
      await ann.keys("C-c");
      assert.equal(await ann.exit(10_000), 130, await ann.screen());
    } finally {
      Deno.kill(bob.pid, "SIGCONT");
    }
    const screen = (await ann.screen()).replaceAll("\n", "");
    assert.match(
      screen,
      /mailmeet: Interrupted after sending [\d.]+ MiB of 400\.0 MiB to bob; run the same command again to resume\./,
    );
    noTrace(screen);
    assert.equal((await bob.status).code, 4, bob.stderr.join("\n"));
    const said = bob.stderr.join("\n");
    assert.match(
      said,
      // The reset that says why is sent, but a receiver frozen until after the sender exited may
      // find only a broken connection (the sender's kernel reset it for data it never read).
      /^mailmeet: The transfer from ann broke off after [\d.]+ MiB of 400\.0 MiB \((the sender was interrupted|the connection broke)\); what arrived is kept in .*\.big\.bin\.mailmeet-part: run `mailmeet receive` again and have ann send again to resume\.$/m,
    );
    assert.ok(!said.includes(").") && !/\d{7,} bytes/.test(said), "no stray ). and no raw byte count");
  }
  const kept = await size(part);
  assert.ok(kept >= 16 * MiB && kept < 400 * MiB, `kept ${kept} bytes`);

  // The retry resumes from what was kept, and the file arrives whole.
  await using bob2 = piped(w, "bob", host, ["receive", "--out", out, "--yes"], w.account("bob2"));
  await bob2.waitFor(is("reply"), 30_000, "bob2's host answer");
  await using ann2 = piped(w, "ann", host, ["send", src, "--to", "bob"], w.account("ann2"));
  const resume = await bob2.waitFor(is("resume"), 30_000, "resume");
  assert.equal(resume.offset, kept);
  assert.equal((await ann2.status).code, 0, ann2.stderr.join("\n"));
  assert.equal((await bob2.status).code, 0, bob2.stderr.join("\n"));
  assert.equal(await sha256(`${out}/big.bin`), await sha256(src));
});

Deno.test("Ctrl-C while waiting ends every command with 130 and one sentence, never 0; --timeout 0 waits for ever", async () => {
  await using w = await world("maildir");
  const host = w.account("host", "game.test");
  w.host("host", host);
  const src = `${w.dir}/a.txt`;
  await Deno.writeTextFile(src, "hello\n");
  const cases: [string, string[], RegExp][] = [
    ["join", ["join", "--timeout", "0"], /^mailmeet: Interrupted before any peer connected\.$/],
    [
      "send",
      ["send", src, "--to", "nobody"],
      /^mailmeet: Interrupted before nobody connected; nothing was sent\.$/,
    ],
    [
      "receive",
      ["receive", "--out", `${w.dir}/in`],
      /^mailmeet: Interrupted before any peer connected; nothing was received\.$/,
    ],
    ["chat", ["chat"], /^mailmeet: Interrupted before anyone joined the room\.$/],
    ["tunnel", ["tunnel", "--expose", "1"], /^mailmeet: Interrupted before any peer connected\.$/],
  ];
  for (const [name, args, said] of cases) {
    await using p = piped(w, `${name}-user`, host, args);
    // The host answered: the command is waiting for a peer (with --timeout 0, for ever).
    await p.waitFor(is("waiting"), 30_000, `${name} waiting`);
    p.kill("SIGINT");
    const st = await p.status;
    assert.equal(st.code, 130, `${name}: ${p.stderr.join("\n")}`);
    assert.equal(p.stderr.length, 1, `${name}: one line: ${p.stderr.join("\n")}`);
    assert.match(p.stderr[0], said, name);
    assert.ok(p.events.some(is("error", { exit: 130 })), `${name}: the --json error event carries exit 130`);
  }
  // A dedicated host and a linked join: interrupted is 130 too, not "done".
  await using h2 = spawnHost(w);
  await h2.waitFor(is("hosting"), 30_000, "the host's start line");
  h2.kill("SIGINT");
  assert.equal((await h2.status).code, 130, h2.stderr.join("\n"));
  assert.match(h2.stderr.join("\n"), /^mailmeet: Interrupted; the host stopped\.$/m);

  await using a = piped(w, "ann", host, ["join"]);
  await a.waitFor(is("waiting"), 30_000, "ann waiting");
  await using b = piped(w, "bob", host, ["join"]);
  await b.waitFor(is("connected", { peer: "ann" }), 30_000, "bob linked");
  b.kill("SIGINT");
  assert.equal((await b.status).code, 130, b.stderr.join("\n"));
  assert.match(b.stderr.join("\n"), /^mailmeet: Interrupted; the links are closed\.$/m);
});

function spawnHost(w: Awaited<ReturnType<typeof world>>) {
  const a = w.account("host2", "game.test");
  return w.host("host2", a);
}

Deno.test("[tty] Ctrl-C at init's password question ends it with 130 and writes nothing", async () => {
  await using w = await world("maildir");
  const { terminal } = await import("../helpers/terminal.ts");
  const { BUNDLE, OFFLINE_ENV } = await import("../../scripts/lib/cli_process.ts");
  await using t = await terminal([Deno.execPath(), "run", "-A", "--unstable-net", BUNDLE, "init"], {
    env: { ...OFFLINE_ENV, ...w.env },
  });
  await t.waitFor(/Your e-mail address: *$/, 30_000, "the first question");
  await t.type("bob@isp-b.test");
  await t.keys("Enter");
  await t.waitFor(/Server for sending .*: *$/, 10_000, "the SMTP question");
  await t.keys("Enter");
  await t.waitFor(/Server for reading .*: *$/, 10_000, "the IMAP question");
  await t.keys("Enter");
  await t.waitFor(/Login name .*: *$/, 10_000, "the login question");
  await t.keys("Enter");
  await t.waitFor(/Password \(not shown\): *$/, 10_000, "the password question");
  await t.type("half a pass");
  await t.keys("C-c");
  assert.equal(await t.exit(10_000), 130, await t.screen());
  const screen = await t.screen();
  assert.match(screen, /^mailmeet: Cancelled; nothing was written\.$/m);
  assert.ok(!screen.includes("half a pass"), "the password was echoed");
  await assert.rejects(Deno.stat(`${w.env.XDG_CONFIG_HOME}/mailmeet/config.json`), "no config written");
});
