import assert from "node:assert/strict";
import { checkCommandArgs, COMMANDS, findCommand, mainHelp, unknownCommand } from "../../src/cli/commands.ts";
import { resolveOptions } from "../../src/cli/options.ts";

const EXTRAS = COMMANDS.flatMap((c) => c.extras ?? []);
const check = async (args: string[]) => {
  const r = await resolveOptions(args, {}, EXTRAS);
  checkCommandArgs(findCommand(r.command)!, r);
};

Deno.test("an option of another command is refused with one sentence naming whose it is", async () => {
  await assert.rejects(
    () => check(["join", "--expose", "80"]),
    /`mailmeet join` does not take --expose; it is an option of `mailmeet tunnel`\./,
  );
  await assert.rejects(() => check(["--expose", "80"]), /`mailmeet join` does not take --expose/);
  await assert.rejects(
    () => check(["receive", "--to", "bob"]),
    /it is an option of `mailmeet send` and `mailmeet tunnel`/,
  );
  await assert.rejects(() => check(["chat", "--force"]), /option of `mailmeet receive` and `mailmeet init`/);
  await check(["send", "a.txt", "--to", "bob"]);
  await check(["receive", "--out", "x", "-y", "--force"]);
  await check(["tunnel", "--local", "8080", "--to", "bob"]);
});

Deno.test("stray arguments are refused, except where a command takes them", async () => {
  await assert.rejects(
    () => check(["join", "bob"]),
    /`mailmeet join` takes no arguments, but "bob" was given\./,
  );
  await assert.rejects(() => check(["join", "chat"]), /one command at a time: `mailmeet chat`/);
  await check(["config", "show"]);
  await check(["help", "send"]);
});

Deno.test("help lists every option, those of one command too, and every exit code", () => {
  const help = mainHelp();
  for (
    const name of ["to", "out", "yes", "force", "expose", "local", "udp", "password-stdin", "via", "timeout"]
  ) {
    assert.match(help, new RegExp(`--${name}\\b`), `--${name}`);
  }
  assert.match(help, /4 a transfer was declined or broke off/);
  assert.match(help, /130 interrupted/);
  assert.ok(help.split("\n").every((l) => l.length <= 110), "lines fit 110 columns");
  assert.match(
    unknownCommand("jion").message,
    /Unknown command "jion" \(did you mean join\?\); the commands are join, /,
  );
});
