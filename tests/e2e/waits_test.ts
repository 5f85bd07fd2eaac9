/**
 * No silent waits (issue 14, item 2): a bounce of our own request is reported at once (a real
 * RFC 3464 bounce from Postfix for a mistyped domain), a host names each mail it could not open,
 * and a waiting node says what it waits for.
 */
import assert from "node:assert/strict";
import { spawnCli } from "../../scripts/lib/cli_process.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { world } from "../helpers/world.ts";
import { is } from "../helpers/people.ts";

const dec = new TextDecoder();

for (const transport of ["imap", "pop3"] as const) {
  Deno.test(`[${transport}] a mistyped --via: the bounce is reported at once with the address and why; join exits 1, not after --timeout`, async () => {
    await using w = await world(transport);
    const a = w.account("alice");
    await w.send(a, [a], "weekend plans", "personal mail that must stay");
    await w.waitForMail(a, 1);
    await using p = spawnCli("alice", [
      "join",
      ...w.common(a),
      "--via",
      "host2@gmae.test",
      "--listen",
      "127.0.0.1:0",
      "--timeout",
      "300",
    ], w.env);
    const b = await p.waitFor(is("bounced"), 60_000, "the bounce");
    assert.equal(b.address, "host2@gmae.test");
    assert.equal(b.final, true);
    assert.equal(b.reason, "Host or domain name not found");
    assert.equal(b.status, "5.1.2");
    // Exit 1 (a configuration mistake), long before the 300 s --timeout could give 3.
    assert.equal((await p.status).code, 1, p.stderr.join("\n"));
    assert.deepEqual(p.stderr, [
      "mailmeet: The host address bounced, so no host will answer: host2@gmae.test (Host or domain name not found); check --via.",
    ]);
    // The bounce was about our mail: it is gone. Other mail is never touched.
    const left = (await w.raw(a)).map((m) => dec.decode(m));
    assert.equal(left.length, 1, left.join("\n----\n"));
    assert.match(left[0], /Subject: weekend plans/);
  });
}

Deno.test("[imap] one good host and one mistyped: the bounce is a line of its own, the good host still answers", async () => {
  await using w = await world("imap");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const a = w.account("alice");
  await using p = spawnCli("alice", [
    "join",
    ...w.common(a).filter((x) => x !== "--json"),
    "--via",
    hostAcct.address,
    "--via",
    "host2@gmae.test",
    "--listen",
    "127.0.0.1:0",
    "--timeout",
    "0",
  ], w.env);
  const lines = () => p.text.join("\n");
  for (let i = 0; i < 600 && !(/bounced/.test(lines()) && /answered: nobody else yet/.test(lines())); i++) {
    if (
      (await Promise.race([p.status.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))]))
    ) break;
  }
  assert.match(
    lines(),
    /^\d\d:\d\d:\d\d mail to host2@gmae\.test bounced: Host or domain name not found \(5\.1\.2\)$/m,
  );
  assert.match(lines(), /answered: nobody else yet/);
  p.kill("SIGINT");
  assert.equal((await p.status).code, 130);
});

Deno.test("[maildir] a wrong network key: the host names the mail it could not open; the joiner says it still waits, then why it gave up", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  const human = (acct: typeof hostAcct, key?: string) => w.common(acct, key).filter((x) => x !== "--json");
  await using host = spawnCli("host", ["host", ...human(hostAcct), "--db", `${w.dir}/host.db`], w.env);
  const a = w.account("alice");
  await using p = spawnCli("alice", [
    "join",
    ...human(a, generateKeyText()),
    "--via",
    hostAcct.address,
    "--listen",
    "127.0.0.1:0",
    "--timeout",
    "20",
  ], w.env);
  assert.equal((await p.status).code, 3, p.stderr.join("\n"));
  const said = p.text.join("\n");
  assert.match(said, /^\d\d:\d\d:\d\d still waiting for host@game\.test to answer \(asked 1\d s ago\)$/m);
  assert.deepEqual(p.stderr, [
    "mailmeet: No peer connected within 20 s: host@game.test never answered; check that the host runs with the same network key, and --via for typos.",
  ]);
  // The host said, in a line of its own, whose mail it could not open, and why; never what it held.
  const hostSaid = host.text.join("\n");
  assert.match(hostSaid, /^\d\d:\d\d:\d\d hosting for host@game\.test, reading maildir:\/\//m);
  assert.match(
    hostSaid,
    new RegExp(
      `^\\d\\d:\\d\\d:\\d\\d could not open a mailmeet mail from ${
        a.address.replaceAll(".", "\\.")
      }: The message does not open with our network key`,
      "m",
    ),
  );
  assert.ok(!/127\.0\.0\.1|BEGIN|mmk1-/.test(hostSaid), `the host showed content:\n${hostSaid}`);
});
