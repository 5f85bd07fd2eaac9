/** `init` and `config show` in-process: the questions, the files written, the masking. */
import assert from "node:assert/strict";
import { resolveOptions } from "../../src/cli/options.ts";
import { initCommand } from "../../src/cli/commands/init.ts";
import { shownSettings } from "../../src/cli/commands/config.ts";
import { COMMANDS } from "../../src/cli/commands.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { scriptedIo } from "./prompt_test.ts";

const EXTRAS = COMMANDS.flatMap((c) => c.extras ?? []);

async function withHome(fn: (home: string, env: Record<string, string>) => Promise<void>) {
  const home = await Deno.makeTempDir({ prefix: "mailmeet-home-" });
  try {
    await fn(home, { HOME: home });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

const mode = async (path: string) => ((await Deno.stat(path)).mode ?? 0) & 0o777;

Deno.test("interactive init suggests the provider's servers, hides the password and imports a typed key", async () => {
  await withHome(async (home, env) => {
    const key = generateKeyText();
    const io = scriptedIo([
      "Bob@Gmail.com\n", // address
      "\n", // SMTP: take smtps://smtp.gmail.com:465
      "\n", // inbox: take imaps://imap.gmail.com:993/INBOX
      "\n", // login: the address
      "app pass word\r", // password (raw mode)
      "lan-host@gmail.com\n", // via
      "Bob\n", // user id
      "y\n", // already have a key
      "\n", // no file: type it
      `${key}\r`, // the key (raw mode)
    ]);
    const printed: string[] = [];
    const r = await resolveOptions(["init"], env, EXTRAS);
    assert.equal(await initCommand(r, { io, interactive: true, env, print: (l) => printed.push(l) }), 0);

    const dir = `${home}/.config/mailmeet`;
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.deepEqual(config, {
      address: "bob@gmail.com",
      smtp: "smtps://bob%40gmail.com:app%20pass%20word@smtp.gmail.com:465",
      inbox: "imaps://bob%40gmail.com:app%20pass%20word@imap.gmail.com:993/INBOX",
      via: ["lan-host@gmail.com"],
      "key-file": `${dir}/network.key`,
      user: "Bob",
    });
    assert.equal((await Deno.readTextFile(`${dir}/network.key`)).trim(), key);
    if (Deno.build.os !== "windows") {
      assert.equal(await mode(`${dir}/config.json`), 0o600);
      assert.equal(await mode(`${dir}/network.key`), 0o600);
      assert.equal(await mode(dir), 0o700);
    }
    const shown = io.written + printed.join("\n");
    assert.match(io.written, /Gmail/);
    assert.match(io.written, /app password/);
    assert.ok(!shown.includes("app pass word"), "the password was echoed");
    assert.ok(!shown.includes(key), "the key was echoed");
    assert.deepEqual(io.rawCalls, [true, false, true, false]);

    // Every command now reads that file by itself; secrets stay masked in `config show`.
    const again = await resolveOptions(["config", "show"], env);
    assert.equal(again.configFile?.origin, "default");
    const settings = Object.fromEntries(shownSettings(again).map((s) => [s.name, s]));
    assert.equal(settings.smtp.value, "smtps://bob%40gmail.com:***@smtp.gmail.com:465");
    assert.equal(settings.smtp.source, "file");
    assert.equal(settings.smtp.from, `${dir}/config.json`);
    assert.ok(!JSON.stringify(settings).includes("app%20pass"));
  });
});

Deno.test("re-running init on a terminal keeps what is there when Enter is pressed", async () => {
  await withHome(async (home, env) => {
    const first = await resolveOptions(
      [
        "init",
        "--address",
        "bob@isp-b.test",
        "--smtp",
        "smtps://bob:pw@smtp.isp-b.test",
        "--inbox",
        "imaps://bob:pw@imap.isp-b.test/INBOX",
        "--via",
        "h@game.test",
      ],
      env,
      EXTRAS,
    );
    await initCommand(first, { interactive: false, env, print: () => {} });
    const path = `${home}/.config/mailmeet/config.json`;
    const before = await Deno.readTextFile(path);
    const printed: string[] = [];
    const declined = await initCommand(await resolveOptions(["init"], env, EXTRAS), {
      io: scriptedIo(["\n"]),
      interactive: true,
      env,
      print: (l) => printed.push(l),
    });
    assert.equal(declined, 0);
    assert.match(printed.join("\n"), /Left .* as it was/);
    const io = scriptedIo(["y\n", "\n", "\n", "\n", "\n", "\n"]); // change it? yes; then Enter everywhere
    const r = await resolveOptions(["init"], env, EXTRAS);
    assert.equal(await initCommand(r, { io, interactive: true, env, print: () => {} }), 0);
    assert.equal(await Deno.readTextFile(path), before);
    assert.match(io.written, /Keep the current network key \(fingerprint/);
  });
});

Deno.test("init with flags: --force keeps earlier settings, a key file beside the config is never replaced", async () => {
  await withHome(async (home, env) => {
    const run = async (args: string[]) =>
      await initCommand(await resolveOptions(["init", ...args], env, EXTRAS), {
        interactive: false,
        env,
        print: () => {},
      });
    await run([
      "--address",
      "a@x.test",
      "--smtp",
      "maildir:///tmp/s",
      "--inbox",
      "maildir:///tmp/s",
      "--timeout",
      "90",
    ]);
    const dir = `${home}/.config/mailmeet`;
    const key = await Deno.readTextFile(`${dir}/network.key`);
    await assert.rejects(() => run(["--via", "h@x.test"]), /already exists at .*--force/);
    await run(["--via", "h@x.test", "--force"]);
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.equal(config.address, "a@x.test");
    assert.equal(config.timeout, "90s", "durations are written as the flags take them");
    assert.deepEqual(config.via, ["h@x.test"]);
    assert.equal(await Deno.readTextFile(`${dir}/network.key`), key);
  });
});

Deno.test("init without a terminal says what is missing, naming the provider's servers", async () => {
  await withHome(async (_home, env) => {
    const r = await resolveOptions(["init", "--address", "bob@yahoo.com"], env, EXTRAS);
    await assert.rejects(
      () => initCommand(r, { interactive: false, env, print: () => {} }),
      /--smtp URL \(for yahoo\.com: smtps:\/\/smtp\.mail\.yahoo\.com:465.*--password-stdin/,
    );
    const r2 = await resolveOptions(["init", "--address", "bob@yahoo.com", "--password-stdin"], env, EXTRAS);
    await initCommand(r2, {
      interactive: false,
      env,
      print: () => {},
      readStdin: () => Promise.resolve("s3cret!\n"),
    });
    const config = JSON.parse(await Deno.readTextFile(`${env.HOME}/.config/mailmeet/config.json`));
    assert.equal(config.smtp, "smtps://bob%40yahoo.com:s3cret!@smtp.mail.yahoo.com:465");
  });
});

Deno.test("the default config file: read when present; --config, MAILMEET_CONFIG and flags still win", async () => {
  await withHome(async (home, env) => {
    const dir = `${home}/.config/mailmeet`;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ address: "file@x.test", user: "from-file" }),
    );
    const r = await resolveOptions([], env);
    assert.equal(r.values.address, "file@x.test");
    assert.equal(r.sources.address, "file");
    assert.deepEqual(r.configFile, { path: `${dir}/config.json`, origin: "default", exists: true });
    const r2 = await resolveOptions(["--user", "flag"], { ...env, MAILMEET_ADDRESS: "env@x.test" });
    assert.equal(r2.values.address, "env@x.test");
    assert.equal(r2.values.user, "flag");
    const other = `${home}/other.json`;
    await Deno.writeTextFile(other, JSON.stringify({ address: "other@x.test" }));
    assert.equal((await resolveOptions(["--config", other], env)).values.address, "other@x.test");
    assert.equal(
      (await resolveOptions([], { ...env, MAILMEET_CONFIG: other })).values.address,
      "other@x.test",
    );
    // Without a home, no default file is looked for.
    assert.equal((await resolveOptions([], {})).configFile, undefined);
  });
});

Deno.test("init may name a config file that does not exist yet; other commands may not", async () => {
  await withHome(async (home, env) => {
    const r = await resolveOptions(["init", "--config", `${home}/new.json`], env, EXTRAS);
    assert.equal(r.configFile?.exists, false);
    await assert.rejects(
      () => resolveOptions(["join", "--config", `${home}/new.json`], env),
      /does not exist/,
    );
  });
});

Deno.test("init --key-file copies the key beside the config: moving the original later breaks nothing", async () => {
  await withHome(async (home, env) => {
    const key = generateKeyText();
    const given = `${home}/Downloads/group.key`;
    await Deno.mkdir(`${home}/Downloads`);
    await Deno.writeTextFile(given, `${key}\n`);
    const printed: string[] = [];
    const r = await resolveOptions(
      [
        "init",
        "--address",
        "a@x.test",
        "--smtp",
        "maildir:///tmp/s",
        "--inbox",
        "maildir:///tmp/s",
        "--key-file",
        given,
      ],
      env,
      EXTRAS,
    );
    assert.equal(await initCommand(r, { interactive: false, env, print: (l) => printed.push(l) }), 0);
    const dir = `${home}/.config/mailmeet`;
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.equal(config["key-file"], `${dir}/network.key`);
    assert.equal((await Deno.readTextFile(`${dir}/network.key`)).trim(), key);
    assert.match(printed.join("\n"), /Copied the network key from .*group\.key to .*network\.key/);
    await Deno.remove(given);
    assert.equal((await resolveOptions([], env)).values["key-file"], `${dir}/network.key`);
  });
});

Deno.test("init --force with a new address and --password-stdin logs in as the new address with the new password", async () => {
  await withHome(async (home, env) => {
    const run = async (args: string[], password: string) =>
      await initCommand(await resolveOptions(["init", ...args], env, EXTRAS), {
        interactive: false,
        env,
        print: () => {},
        readStdin: () => Promise.resolve(`${password}\n`),
      });
    await run(["--address", "old@yahoo.com", "--password-stdin"], "old-pass");
    await run(["--address", "new@gmail.com", "--password-stdin", "--force"], "new-pass");
    const config = JSON.parse(await Deno.readTextFile(`${home}/.config/mailmeet/config.json`));
    assert.equal(config.address, "new@gmail.com");
    assert.equal(config.smtp, "smtps://new%40gmail.com:new-pass@smtp.gmail.com:465");
    assert.equal(config.inbox, "imaps://new%40gmail.com:new-pass@imap.gmail.com:993/INBOX");
    // Same address, new password: the login in the URLs stays, the password is the new one.
    await run(["--password-stdin", "--force"], "newer-pass");
    const again = JSON.parse(await Deno.readTextFile(`${home}/.config/mailmeet/config.json`));
    assert.equal(again.smtp, "smtps://new%40gmail.com:newer-pass@smtp.gmail.com:465");
  });
});

Deno.test("a key file path typed at the question may start with ~/", async () => {
  await withHome(async (home, env) => {
    const key = generateKeyText();
    await Deno.writeTextFile(`${home}/group.key`, key);
    const io = scriptedIo([
      "bob@isp-b.test\n",
      "maildir:///tmp/spool\n",
      "maildir:///tmp/spool\n",
      "\n", // via: none
      "\n", // user id
      "y\n", // already have a key
      "~/group.key\n",
    ]);
    const r = await resolveOptions(["init"], env, EXTRAS);
    assert.equal(await initCommand(r, { io, interactive: true, env, print: () => {} }), 0);
    const dir = `${home}/.config/mailmeet`;
    assert.equal((await Deno.readTextFile(`${dir}/network.key`)).trim(), key);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/config.json`))["key-file"], `${dir}/network.key`);
  });
});
