/** The CLI contract as a user meets it: exit codes, one sentence on failure, help, keygen. */
import assert from "node:assert/strict";
import { ensureBundle, runCli as runIsolated } from "../../scripts/lib/cli_process.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";

await ensureBundle();
const KEY = generateKeyText();
// Never the developer's own config or data folder (a host table there may be another version's).
const HOME = await Deno.makeTempDir({ prefix: "mailmeet-cli-" });
const ENV = { XDG_CONFIG_HOME: `${HOME}/config`, XDG_DATA_HOME: `${HOME}/data` };
const runCli = (args: string[]) => runIsolated(args, ENV);
globalThis.addEventListener("unload", () => Deno.removeSync(HOME, { recursive: true }));

function oneSentence(stderr: string) {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, `more than one line on stderr:\n${stderr}`);
  assert.match(lines[0], /^mailmeet: [A-Z-].*[.!]$/);
  assert.ok(!stderr.includes("    at "), "a stack trace");
}

Deno.test("bad usage exits 1 with one sentence that says what to do", async () => {
  for (
    const args of [
      ["join", "--key", KEY, "--via", "h@x.test"], // no --address
      ["join", "--address", "a@x.test", "--via", "h@x.test"], // no key
      ["join", "--address", "a@x.test", "--key", KEY, "--via", "not-an-address"],
      ["join", "--address", "a@x.test", "--key", "short", "--via", "h@x.test"],
      ["join", "--address", "a@x.test", "--key", KEY, "--via", "h@x.test", "--inbox", "ftp://x"],
      ["--frobnicate"],
      ["nonsense-command"],
      ["host", "--address", "h@x.test", "--key", KEY, "--ttl", "forever"],
    ]
  ) {
    const out = await runCli(args);
    assert.equal(out.code, 1, `${args.join(" ")}: ${out.stderr}`);
    oneSentence(out.stderr);
  }
});

Deno.test("an unreachable mail server exits 2 with one sentence naming it", async () => {
  const out = await runCli([
    "join",
    "--address",
    "a@x.test",
    "--key",
    KEY,
    "--via",
    "h@x.test",
    "--listen",
    "127.0.0.1:0",
    "--smtp",
    "smtp://127.0.0.1:1?tls=none",
    "--inbox",
    `maildir://${await Deno.makeTempDir()}`,
    // A server that never answered is waited for until --timeout (it may be restarting).
    "--timeout",
    "3",
  ]);
  assert.equal(out.code, 2, out.stderr);
  oneSentence(out.stderr);
  assert.match(out.stderr, /127\.0\.0\.1:1/);
});

Deno.test("a password in a URL never shows in an error", async () => {
  const out = await runCli([
    "host",
    "--address",
    "h@x.test",
    "--key",
    KEY,
    "--inbox",
    "imaps://h%40x.test:SuperSecret99@127.0.0.1:1/INBOX",
    "--smtp",
    "smtps://h%40x.test:SuperSecret99@127.0.0.1:1",
    "--timeout",
    "3",
  ]);
  assert.equal(out.code, 2, out.stderr);
  assert.ok(!out.stderr.includes("SuperSecret99"));
  assert.ok(!out.stdout.includes("SuperSecret99"));
});

Deno.test("keygen prints a key that join accepts, and --help and --version answer", async () => {
  const key = await runCli(["keygen"]);
  assert.equal(key.code, 0);
  assert.match(key.stdout.trim(), /^mmk1-[A-Za-z0-9_-]{48}$/);
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Commands:/);
  const joinHelp = await runCli(["join", "--help"]);
  assert.match(joinHelp.stdout, /Example:/);
  const version = await runCli(["--version"]);
  assert.match(version.stdout, /^mailmeet \d+\.\d+\.\d+/);
});
