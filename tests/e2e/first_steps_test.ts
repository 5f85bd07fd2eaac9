/**
 * What a new user types first (issue 14, items 3, 4 and 7): init and the key file, one sentence for
 * every mistake (TLS and protocol mismatches on the real servers, options of other commands,
 * typos, `mailmeet help`), checks made before the meeting, and an install that outlives the checkout.
 */
import assert from "node:assert/strict";
import { BUNDLE, ensureBundle, OFFLINE_ENV, runCli } from "../../scripts/lib/cli_process.ts";
import { world } from "../helpers/world.ts";
import { is, piped } from "../helpers/people.ts";

await ensureBundle();

/** One line on stderr, "mailmeet: …" ending in a full stop, with no library or parser text. */
function oneSentence(stderr: string, what: string) {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${what}: more than one line on stderr:\n${stderr}`);
  assert.match(lines[0], /^mailmeet: \S.*[.!]$/, what);
  for (
    const raw of [
      "InvalidContentType",
      "SSL routines",
      "os error",
      "malformed response",
      "Unexpected error",
      "    at ",
    ]
  ) {
    assert.ok(!stderr.includes(raw), `${what}: "${raw}" in ${stderr}`);
  }
}

async function fresh() {
  const dir = await Deno.makeTempDir({ prefix: "mailmeet-newuser-" });
  const env = { HOME: dir, XDG_CONFIG_HOME: `${dir}/config`, XDG_DATA_HOME: `${dir}/data` };
  return {
    dir,
    env,
    run: (args: string[]) => runCli(args, env),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("init --key-file keeps its own copy: moving the original breaks nothing; a missing key file is one sentence", async () => {
  await using u = await fresh();
  const spool = `maildir://${u.dir}/spool`;
  const keygen = await u.run(["keygen"]);
  await Deno.mkdir(`${u.dir}/Downloads`);
  await Deno.writeTextFile(`${u.dir}/Downloads/group.key`, keygen.stdout);
  const init = await u.run([
    "init",
    "--address",
    "ann@isp-a.test",
    "--smtp",
    spool,
    "--inbox",
    spool,
    "--key-file",
    `${u.dir}/Downloads/group.key`,
  ]);
  assert.equal(init.code, 0, init.stderr);
  const own = `${u.dir}/config/mailmeet/network.key`;
  assert.match(
    init.stdout,
    new RegExp(`Copied the network key from .*group\\.key to ${own.replaceAll(".", "\\.")}`),
  );
  assert.equal((await Deno.readTextFile(own)).trim(), keygen.stdout.trim());
  await Deno.remove(`${u.dir}/Downloads/group.key`);

  // Doctor reads the copy, and says what kind of key it is and where it is, not "generated".
  const doctor = await u.run(["doctor", "--timeout", "20"]);
  assert.match(
    doctor.stdout,
    /settings: ann@isp-a\.test as "ann", network key \S+ \(a key from `mailmeet keygen`, from .*network\.key\)/,
  );
  assert.ok(!doctor.stdout.includes("generated key"));

  // Had the key file itself gone, every command says so in one sentence, with the way out.
  await Deno.rename(own, `${own}.moved`);
  const join = await u.run(["join", "--timeout", "1"]);
  assert.equal(join.code, 1);
  oneSentence(join.stderr, "missing key file");
  assert.match(
    join.stderr,
    /The network key file .*network\.key \(named in .*config\.json\) does not exist; if it moved, run `mailmeet init --force --key-file NEW-PATH`/,
  );
});

Deno.test("init --force with a new address and --password-stdin logs in as the new address with the new password", async () => {
  await using u = await fresh();
  const init = async (args: string[], password: string) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", BUNDLE, "init", ...args],
      env: { ...OFFLINE_ENV, ...u.env, NO_COLOR: "1" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(`${password}\n`));
    await w.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return JSON.parse(await Deno.readTextFile(`${u.dir}/config/mailmeet/config.json`));
  };
  await init(["--address", "old@yahoo.com", "--password-stdin"], "old-secret");
  const config = await init(["--address", "new@gmail.com", "--password-stdin", "--force"], "new-secret");
  assert.equal(config.smtp, "smtps://new%40gmail.com:new-secret@smtp.gmail.com:465");
  assert.equal(config.inbox, "imaps://new%40gmail.com:new-secret@imap.gmail.com:993/INBOX");
  assert.ok(!JSON.stringify(config).includes("old"), JSON.stringify(config));
});

Deno.test("[imap] a wrong port or TLS mode on the real servers is one sentence naming what is there", async () => {
  await using w = await world("imap");
  const a = w.account("alice");
  const { ports } = w.stack!;
  const url = (scheme: string, port: number, path = "") =>
    `${scheme}://${encodeURIComponent(a.address)}:${w.stack!.password}@127.0.0.1:${port}${path}`;
  const cases: [string, string, string, number, RegExp][] = [
    [
      "smtps:// on the STARTTLS port",
      url("smtps", ports.submission),
      a.inbox,
      2,
      /the server does not speak TLS from the start on this port; use imap:\/\/, pop3:\/\/ or smtp:\/\/ \(STARTTLS\)/,
    ],
    [
      "imaps:// on the SMTPS port",
      a.smtp,
      url("imaps", ports.smtps, "/INBOX"),
      1,
      /127\.0\.0\.1:\d+ is an SMTP server, not IMAP: check the port \(IMAP is usually imaps:\/\/ on port 993/,
    ],
    ["pop3:// on the IMAP port", a.smtp, url("pop3", ports.imap), 1, /is an IMAP server, not POP3/],
    ["imap:// on the POP3 port", a.smtp, url("imap", ports.pop3, "/INBOX"), 1, /is a POP3 server, not IMAP/],
    ["smtp:// on the IMAP port", url("smtp", ports.imap), a.inbox, 1, /is an IMAP server, not SMTP/],
  ];
  for (const [what, smtp, inbox, code, said] of cases) {
    const out = await w.run([
      "join",
      "--address",
      a.address,
      "--smtp",
      smtp,
      "--inbox",
      inbox,
      "--key",
      w.key,
      "--tls-ca",
      w.stack!.caFile,
      "--via",
      "host@game.test",
      "--listen",
      "127.0.0.1:0",
      "--timeout",
      "30",
    ]);
    assert.equal(out.code, code, `${what}: ${out.stderr}`);
    oneSentence(out.stderr, what);
    assert.match(out.stderr, said, what);
  }
});

Deno.test("every other mistake is one sentence that says what to do, before anything is mailed", async () => {
  await using w = await world("maildir");
  const host = w.account("host", "game.test");
  const a = w.account("alice");
  await using u = await fresh();
  const cases: [string, string[], RegExp][] = [
    ["no settings at all", ["join"], /No settings yet: run `mailmeet init` once/],
    ["a typo in a command", ["jion"], /Unknown command "jion" \(did you mean join\?\); the commands are/],
    [
      "a typo in an option",
      ["join", "--adress", "a@x.test"],
      /Unknown option --adress \(did you mean --address\?\)/,
    ],
    ["a negative --timeout", ["join", "--timeout", "-5"], /--timeout cannot be negative \(-5\)/],
    [
      "another command's option",
      ["join", "--expose", "80"],
      /`mailmeet join` does not take --expose; it is an option of `mailmeet tunnel`/,
    ],
    ["a stray argument", ["chat", "bob"], /`mailmeet chat` takes no arguments, but "bob" was given/],
  ];
  for (const [what, args, said] of cases) {
    const out = await u.run(args);
    assert.equal(out.code, 1, `${what}: ${out.stderr}`);
    oneSentence(out.stderr, what);
    assert.match(out.stderr, said, what);
  }
  // A listen address that is not this machine's; an --out folder nobody may write (even root).
  for (
    const [what, args, said] of [
      [
        "--listen on a foreign address",
        ["join", "--listen", "8.8.8.8:17103"],
        /Cannot listen on 8\.8\.8\.8:17103: 8\.8\.8\.8 is not an address of this machine/,
      ],
      [
        "an --out folder that cannot be written",
        ["receive", "--out", "/sys/kernel"],
        /Cannot receive into --out \/sys\/kernel: this user may not write there/,
      ],
    ] as const
  ) {
    const out = await w.run([...args, ...w.common(a), "--via", host.address]);
    assert.equal(out.code, 1, `${what}: ${out.stderr}`);
    oneSentence(out.stderr, what);
    assert.match(out.stderr, said, what);
    assert.ok(!out.stdout.includes("request_sent"), `${what}: checked before asking the host`);
  }
  assert.deepEqual(await w.raw(host), [], "nothing was mailed");

  const help = await u.run(["help"]);
  assert.equal(help.code, 0);
  for (
    const opt of ["--to", "--out", "--yes", "--force", "--expose", "--local", "--udp", "--password-stdin"]
  ) {
    assert.ok(help.stdout.includes(opt), opt);
  }
  assert.match(help.stdout, /4 a transfer was declined or broke off/);
  assert.match(help.stdout, /130 interrupted/);
  assert.match((await u.run(["help", "send"])).stdout, /^mailmeet send PATH… --to ID/);
});

Deno.test("[maildir] a refused offer tells the sender the offered name, never where the receiver keeps files", async () => {
  await using w = await world("maildir");
  const host = w.account("host", "game.test");
  w.host("host", host);
  const out = `${w.dir}/private-folder`;
  await Deno.mkdir(out);
  await Deno.writeTextFile(`${out}/notes.txt`, "mine\n");
  await Deno.writeTextFile(`${w.dir}/notes.txt`, "theirs\n");
  await using bob = piped(w, "bob", host, ["receive", "--out", out, "--yes"]);
  await bob.waitFor(is("reply"), 30_000, "bob's host answer");
  await using ann = piped(w, "ann", host, ["send", `${w.dir}/notes.txt`, "--to", "bob"]);
  assert.equal((await ann.status).code, 4);
  assert.equal((await bob.status).code, 4);
  const said = ann.stderr.join("\n");
  assert.match(said, /^mailmeet: bob declined: "notes\.txt" already exists \(--force overwrites it\)\.$/m);
  assert.ok(!said.includes("private-folder"), said);
  assert.equal(await Deno.readTextFile(`${out}/notes.txt`), "mine\n");
});

Deno.test("deno task install puts in a copy: the command works after the checkout is gone, and Deno does not warn", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailmeet-install-" });
  try {
    const checkout = `${dir}/checkout`;
    await Deno.mkdir(`${checkout}/dist`, { recursive: true });
    await Deno.copyFile(BUNDLE, `${checkout}/dist/mailmeet.js`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-run",
        new URL("../../scripts/install.ts", import.meta.url).pathname,
        "--root",
        `${dir}/root`,
        "--bundle",
        `${checkout}/dist/mailmeet.js`,
      ],
      // From inside the project, where a deno.json is there to be discovered.
      cwd: new URL("../..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.ok(out.success, text);
    assert.ok(!/ignored|warning/i.test(text), text);
    await Deno.remove(checkout, { recursive: true });
    const version = await new Deno.Command(`${dir}/root/bin/mailmeet`, {
      args: ["--version"],
      stdout: "piped",
    })
      .output();
    assert.equal(version.code, 0);
    assert.match(new TextDecoder().decode(version.stdout), /^mailmeet \d+\.\d+\.\d+/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
