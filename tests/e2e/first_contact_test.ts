/**
 * The first minutes with mailmeet, as processes: init and the config file every command then
 * reads, `config show` with secrets masked, `status` with nothing running, help with an example for
 * every command, one sentence (and a JSON event) for every failure.
 */
import assert from "node:assert/strict";
import { ensureBundle, runCli } from "../../scripts/lib/cli_process.ts";
import { DENO_PERMISSIONS } from "../../src/cli/permissions.ts";
import { COMMANDS } from "../../src/cli/commands.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";

await ensureBundle();
const PERMS = { permissions: DENO_PERMISSIONS };

async function withHome(fn: (env: Record<string, string>, home: string) => Promise<void>) {
  const home = await Deno.makeTempDir({ prefix: "mailmeet-first-home-" });
  try {
    await fn({ HOME: home, XDG_CONFIG_HOME: "", XDG_DATA_HOME: "" }, home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

function oneSentence(stderr: string) {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, `more than one line on stderr:\n${stderr}`);
  assert.match(lines[0], /^mailmeet: [A-Z].*[.!]$/);
}

Deno.test("init writes the config every command then reads; config show masks the secrets and names sources", async () => {
  await withHome(async (env, home) => {
    const spool = `${home}/spool`;
    const init = await runCli(
      [
        "init",
        "--address",
        "bob@isp-b.test",
        "--smtp",
        "smtps://bob%40isp-b.test:Sekr1t-Pw@smtp.isp-b.test",
        "--inbox",
        `maildir://${spool}`,
        "--via",
        "lan-host@game.test",
      ],
      env,
      PERMS,
    );
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /Created a network key in .*network\.key \(fingerprint [0-9a-f-]+\)/);
    assert.ok(!init.stdout.includes("Sekr1t-Pw"));
    const key = (await Deno.readTextFile(`${home}/.config/mailmeet/network.key`)).trim();

    const show = await runCli(
      ["config", "show", "--timeout", "45"],
      { ...env, MAILMEET_USER: "bobby" },
      PERMS,
    );
    assert.equal(show.code, 0, show.stderr);
    assert.ok(!show.stdout.includes("Sekr1t-Pw"), "a password in config show");
    assert.ok(!show.stdout.includes(key), "the key in config show");
    assert.match(show.stdout, /^config file: .*config\.json \(the default location\)$/m);
    assert.match(show.stdout, /^smtp +smtps:\/\/bob%40isp-b\.test:\*\*\*@smtp\.isp-b\.test +file$/m);
    assert.match(show.stdout, /^user +bobby +env MAILMEET_USER$/m);
    assert.match(show.stdout, /^timeout +45s +flag$/m);
    assert.match(show.stdout, /^ttl +12h +default$/m);

    const json = await runCli(["config", "show", "--json"], env, PERMS);
    const events = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(events[0].event, "config");
    assert.match(events[0].key_fingerprint, /^[0-9a-f]{4}-/);
    const via = events.find((e) => e.name === "via");
    assert.deepEqual(via, {
      event: "setting",
      name: "via",
      value: ["lan-host@game.test"],
      source: "file",
      from: `${home}/.config/mailmeet/config.json`,
    });

    // A second init does not overwrite by accident.
    const again = await runCli(["init", "--address", "other@x.test"], env, PERMS);
    assert.equal(again.code, 1);
    oneSentence(again.stderr);
    assert.match(again.stderr, /--force/);
  });
});

Deno.test("init --password-stdin fills in a known provider's servers; the password never shows", async () => {
  await withHome(async (env, home) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...DENO_PERMISSIONS,
        new URL("../../dist/mailmeet.js", import.meta.url).pathname,
        "init",
        "--address",
        "bob@gmx.de",
        "--password-stdin",
        "--key",
        generateKeyText(),
      ],
      env: { NO_COLOR: "1", ...env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode("Gmx Pass#1\n"));
    await w.close();
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(stdout, /--smtp: smtp:\/\/mail\.gmx\.net:587 \(GMX\)/);
    assert.match(stdout, /POP3\/IMAP access/);
    assert.ok(!stdout.includes("Gmx Pass"));
    const config = JSON.parse(await Deno.readTextFile(`${home}/.config/mailmeet/config.json`));
    assert.equal(config.inbox, "imaps://bob%40gmx.de:Gmx%20Pass%231@imap.gmx.net:993/INBOX");
    assert.equal(config.key, undefined, "the key goes into the key file, not the config");
  });
});

Deno.test("status with no node running says so in one sentence and exits 1; --json adds an error event", async () => {
  await withHome(async (env) => {
    const out = await runCli(["status", "--json"], env, PERMS);
    assert.equal(out.code, 1);
    oneSentence(out.stderr);
    assert.match(out.stderr, /No mailmeet node is running/);
    const e = JSON.parse(out.stdout.trim());
    assert.equal(e.event, "error");
    assert.equal(e.exit, 1);
    assert.match(e.message, /No mailmeet node is running/);
  });
});

Deno.test("every command has help with an example; --version works even with a broken config", async () => {
  await withHome(async (env, home) => {
    for (const c of COMMANDS) {
      const out = await runCli([c.name, "--help"], env, PERMS);
      assert.equal(out.code, 0, c.name);
      assert.match(out.stdout, /Examples?:\n {2}mailmeet/, `${c.name} --help has no example`);
    }
    await Deno.mkdir(`${home}/.config/mailmeet`, { recursive: true });
    await Deno.writeTextFile(`${home}/.config/mailmeet/config.json`, "{ not json");
    const version = await runCli(["--version"], env, PERMS);
    assert.match(version.stdout, /^mailmeet \d+\.\d+\.\d+/);
    const broken = await runCli(["join"], env, PERMS);
    assert.equal(broken.code, 1);
    oneSentence(broken.stderr);
    assert.match(broken.stderr, /config\.json is not valid JSON/);
  });
});

Deno.test("a mail failure under --json is one sentence on stderr and an error event with its code", async () => {
  await withHome(async (env) => {
    const out = await runCli(
      [
        "join",
        "--json",
        "--address",
        "a@x.test",
        "--key",
        generateKeyText(),
        "--via",
        "h@x.test",
        "--listen",
        "127.0.0.1:0",
        "--smtp",
        "smtp://127.0.0.1:1",
        "--inbox",
        "imaps://a%40x.test:pw@127.0.0.1:1/INBOX",
        // A server that never answered is waited for until --timeout (it may be restarting).
        "--timeout",
        "3",
      ],
      env,
      PERMS,
    );
    assert.equal(out.code, 2);
    oneSentence(out.stderr);
    const last = JSON.parse(out.stdout.trim().split("\n").at(-1)!);
    assert.equal(last.event, "error");
    assert.equal(last.code, "connect");
    assert.equal(last.exit, 2);
    assert.match(last.message, /127\.0\.0\.1:1.*Check the host and port/);
  });
});
