/**
 * Host and status (issue 14, item 6): a host says at start what it hosts, `table` on a node that
 * never hosted says so, and `status` shows what each node's app does (tunnel ports, connections
 * open) and the members it knows but cannot reach, counting in words.
 */
import assert from "node:assert/strict";
import { spawnCli } from "../../scripts/lib/cli_process.ts";
import { world } from "../helpers/world.ts";
import { is, piped } from "../helpers/people.ts";

Deno.test("[maildir] --host says at start what it hosts, where it reads, how to see the table; table on a non-host says it is not one", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  const db = `${w.dir}/host.db`;
  await using host = spawnCli("host", [
    "--host",
    ...w.common(hostAcct).filter((x) => x !== "--json"),
    "--db",
    db,
  ], w.env);
  for (let i = 0; i < 300 && !host.text.some((l) => l.includes("hosting for")); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const first = host.text.find((l) => l.includes("hosting for"));
  assert.match(
    first ?? host.text.join("\n"),
    new RegExp(
      `^\\d\\d:\\d\\d:\\d\\d hosting for host@game\\.test, reading maildir://.*; the table is ${
        db.replaceAll(".", "\\.")
      } \\(see it with \`mailmeet table\`\\)$`,
    ),
  );
  host.kill("SIGINT");
  assert.equal((await host.status).code, 130);

  const alice = w.account("alice");
  const table = await w.run(["table", "--address", alice.address]);
  assert.equal(table.code, 1, table.stdout);
  assert.match(
    table.stderr,
    /^mailmeet: alice@isp-a\.test is not a host on this machine: it keeps no table \(.* does not exist\); start one with `mailmeet --host`, or name a table with --db\.\n$/,
  );
  const own = await w.run(["table", "--db", db]);
  assert.equal(own.code, 0, own.stderr);
  assert.match(own.stdout, /is empty: no peer asked this host/);
});

Deno.test("[maildir] status shows each node's tunnel and its open connections, members known but not reachable, and counts in words", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  const host = w.host("host", hostAcct);
  // A member that registered and then vanished: the host still lists it.
  {
    await using ghost = piped(w, "ghost", hostAcct, ["join"]);
    await ghost.waitFor(is("reply"), 30_000, "ghost registered");
    ghost.kill("SIGKILL");
  }
  // A service to carry: it echoes.
  const service = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const echo = (async () => {
    for await (const c of service) c.readable.pipeTo(c.writable).catch(() => {});
  })().catch(() => {});
  // A short dial window: the ghost is given up on (and shown as unreachable) within the test.
  await using ann = piped(w, "ann", hostAcct, [
    "tunnel",
    "--expose",
    String(service.addr.port),
    "--dial-window",
    "2",
  ]);
  await ann.waitFor(is("waiting"), 30_000, "ann waiting");
  await using bob = piped(w, "bob", hostAcct, [
    "tunnel",
    "--local",
    "0",
    "--to",
    "ann",
    "--dial-window",
    "2",
  ]);
  const listening = await bob.waitFor(is("tunnel_listening"), 30_000, "bob's local port");
  await bob.waitFor(is("connected", { peer: "ann" }), 30_000, "bob linked to ann");
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: listening.port as number });
  await conn.write(new TextEncoder().encode("ping"));
  const buf = new Uint8Array(4);
  assert.equal(await conn.read(buf), 4);
  await ann.waitFor(is("tunnel_open"), 30_000, "ann's side open");
  await bob.waitFor(is("tunnel_open"), 30_000, "bob's side open");
  await host.waitForCount(is("host_reply"), 3, 30_000, "three answers");
  await bob.waitFor(is("dial_failed", { peer: "ghost" }), 30_000, "bob giving up on the ghost");

  const out = await w.run(["status"]);
  assert.equal(out.code, 0, out.stderr);
  const text = out.stdout;
  assert.match(
    text,
    new RegExp(`tunnel: linked peers reach TCP port ${service.addr.port} here; 1 connection open`),
  );
  assert.match(
    text,
    new RegExp(`tunnel: TCP 127\\.0\\.0\\.1:${listening.port} reaches ann; 1 connection open`),
  );
  assert.match(
    text,
    /known but not reachable: 1 \(they may still dial us\)\n\s+ghost at 127\.0\.0\.1:\d+ — Cannot connect/,
  );
  assert.match(text, /host: the table holds 3 peers; 3 requests answered with 3 replies, the last /);
  assert.ok(!/\(s\)|\(es\)/.test(text), `counts in words:\n${text}`);
  conn.close();
  service.close();
  await echo;
});
