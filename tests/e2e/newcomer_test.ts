/**
 * Someone who has never run mailmeet: an empty home folder, `init` with flags, `doctor` all green
 * against the real Postfix + Dovecot, then `join` — with nothing on the command line but --json —
 * meets a friend who is already online. Every process runs the bundle with the Deno permissions the
 * README asks for (not -A).
 */
import assert from "node:assert/strict";
import { type CliProcess, ensureBundle, runCli, spawnCli } from "../../scripts/lib/cli_process.ts";
import { DENO_PERMISSIONS } from "../../src/cli/permissions.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { mailStack } from "../helpers/mailstack.ts";

await ensureBundle();
const PERMS = { permissions: DENO_PERMISSIONS };

Deno.test("a newcomer: empty home, init with flags, doctor all green, join meets a friend", async () => {
  await using stack = await mailStack();
  const home = await Deno.makeTempDir({ prefix: "mailmeet-newcomer-home-" });
  const group = await Deno.makeTempDir({ prefix: "mailmeet-newcomer-group-" });
  const procs: CliProcess[] = [];
  try {
    // The group: a key they share, a spare PC hosting, a friend already online.
    const keyFile = `${group}/group.key`;
    await Deno.writeTextFile(keyFile, generateKeyText() + "\n");
    const hostAddress = stack.freshAddress("lan-host", "game.test");
    const friendAddress = stack.freshAddress("friend", "isp-a.test");
    const me = stack.freshAddress("newcomer", "isp-b.test");
    const others = { HOME: group, XDG_CONFIG_HOME: "", XDG_DATA_HOME: "" };
    const mailFlags = (a: string) => [
      "--address",
      a,
      "--smtp",
      stack.url("submission", a),
      "--inbox",
      stack.url("imap", a),
      "--tls-ca",
      stack.caFile,
    ];
    const host = spawnCli(
      "host",
      ["host", ...mailFlags(hostAddress), "--key-file", keyFile, "--db", `${group}/host.db`, "--json"],
      others,
      undefined,
      PERMS,
    );
    procs.push(host);
    const friend = spawnCli(
      "friend",
      [
        "join",
        ...mailFlags(friendAddress),
        "--key-file",
        keyFile,
        "--user",
        "friend",
        "--via",
        hostAddress,
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "120",
        "--json",
      ],
      others,
      undefined,
      PERMS,
    );
    procs.push(friend);
    await friend.waitFor((e) => e.event === "reply", 60_000, "the friend's reply from the host");

    // 1. init, with flags only.
    const env = { HOME: home, XDG_CONFIG_HOME: "", XDG_DATA_HOME: "" };
    const init = await runCli(
      [
        "init",
        ...mailFlags(me),
        "--via",
        hostAddress,
        "--key-file",
        keyFile,
        "--user",
        "newcomer",
        "--listen",
        "127.0.0.1:0",
      ],
      env,
      PERMS,
    );
    assert.equal(init.code, 0, init.stderr);
    const configPath = `${home}/.config/mailmeet/config.json`;
    assert.match(init.stdout, new RegExp(`Wrote ${configPath.replaceAll(".", "\\.")}`));
    assert.ok(!(init.stdout + init.stderr).includes(stack.password), "init showed the password");
    if (Deno.build.os !== "windows") assert.equal(((await Deno.stat(configPath)).mode ?? 0) & 0o777, 0o600);

    // 2. doctor: nothing on the command line, every step passes, the host answers a real request.
    const doctor = await runCli(["doctor", "--json"], env, PERMS);
    const checks = doctor.stdout.trim().split("\n").map((l) => JSON.parse(l)).filter((e) =>
      e.event === "check"
    );
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    // STUN and the router are left alone by every process the tests start on this machine
    // (OFFLINE_ENV); the NAT lab checks them. No IPv6 is not a failure either.
    const notHere = new Set(["nat", "port_mapping", "ipv6"]);
    const failedOrSkipped = checks.filter((c) =>
      c.status === "fail" || (c.status === "skip" && !notHere.has(c.check))
    );
    assert.deepEqual(failedOrSkipped, [], JSON.stringify(failedOrSkipped));
    for (const name of ["smtp_login", "inbox_login", "inbox_push", "roundtrip", "via", "listen"]) {
      assert.equal(checks.find((c) => c.check === name)?.status, "ok", name);
    }
    assert.match(checks.find((c) => c.check === "via").title, /answered in .* \(1 other peer\(s\) online\)/);

    // 3. join: the config says everything.
    const joined = spawnCli("newcomer", ["join", "--json", "--timeout", "60"], env, undefined, PERMS);
    procs.push(joined);
    await joined.waitFor(
      (e) => e.event === "connected" && e.peer === "friend",
      60_000,
      "newcomer linked to friend",
    );
    await friend.waitFor(
      (e) => e.event === "connected" && e.peer === "newcomer",
      60_000,
      "friend linked to newcomer",
    );

    // 4. status sees the running node and its link.
    const status = await runCli(["status", "--json"], env, PERMS);
    assert.equal(status.code, 0, status.stderr);
    const nodes = status.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(nodes.length, 1);
    assert.equal(nodes[0].address, me);
    assert.deepEqual(nodes[0].peers.map((p: { peer: string }) => p.peer), ["friend"]);
    assert.ok(nodes[0].last_reply, "the reply time is shown");
  } finally {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.allSettled(procs.map((p) => p[Symbol.asyncDispose]()));
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(group, { recursive: true }).catch(() => {});
  }
});
