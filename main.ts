// mailmeet CLI entry: parse, load config, dispatch. Everything else lives in src/.
import { resolveOptions } from "./src/cli/options.ts";
import { errorEvent, exitCodeFor, InterruptedError, sentenceFor } from "./src/cli/errors.ts";
import { reportForcedExit } from "./src/cli/signals.ts";
import { checkCommandArgs, COMMANDS, findCommand, mainHelp, unknownCommand } from "./src/cli/commands.ts";
import denoJson from "./deno.json" with { type: "json" };

const TRUE = /^(1|true|yes|on)$/i;
/** `deno task mailmeet -- ARGS` passes the "--" through; it is not an argument of ours. */
const ARGS = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;

function envFlag(name: string): boolean {
  try {
    return TRUE.test(Deno.env.get(name) ?? "");
  } catch {
    return false; // no --allow-env
  }
}

/** Before options are resolved (they may be what failed), --debug and --json are read from args and env. */
const debug = ARGS.includes("--debug") || envFlag("MAILMEET_DEBUG");
const json = ARGS.includes("--json") || envFlag("MAILMEET_JSON");

/** The one place a failure reaches the user: one sentence on stderr (and an event with --json). */
function fail(err: unknown): number {
  const code = exitCodeFor(err);
  console.error(`mailmeet: ${sentenceFor(err)}`);
  if (json) console.log(JSON.stringify(errorEvent(err, code)));
  if (debug) console.error(err);
  return code;
}
// A cleanup cut short after Ctrl-C ends the same way.
reportForcedExit((sentence) => void fail(new InterruptedError(sentence)));

// A failure that escapes a command (a callback, a stream) still ends as one sentence, not a trace.
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  Deno.exit(fail(e.reason));
});
globalThis.addEventListener("error", (e) => {
  e.preventDefault();
  Deno.exit(fail(e.error));
});

async function main(args: string[]): Promise<number> {
  if (args.includes("--version")) {
    // Before the config is read: --version works even when the config file is broken.
    console.log(
      json ? JSON.stringify({ event: "version", version: denoJson.version }) : `mailmeet ${denoJson.version}`,
    );
    return 0;
  }
  try {
    const r = await resolveOptions(args, Deno.env.toObject(), COMMANDS.flatMap((c) => c.extras ?? []));
    const cmd = findCommand(r.command);
    if (!cmd) throw unknownCommand(r.command);
    if (r.values.help) {
      console.log(r.explicitCommand ? cmd.help : mainHelp());
      return 0;
    }
    checkCommandArgs(cmd, r);
    return await cmd.run(r);
  } catch (err) {
    return fail(err);
  }
}

Deno.exit(await main(ARGS));
