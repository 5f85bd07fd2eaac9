// mailmeet CLI entry: parse, load config, dispatch. Everything else lives in src/.
import { resolveOptions } from "./src/cli/options.ts";
import { exitCodeFor, sentenceFor, UsageError } from "./src/cli/errors.ts";
import { COMMANDS, findCommand, mainHelp } from "./src/cli/commands.ts";
import denoJson from "./deno.json" with { type: "json" };

async function main(args: string[]): Promise<number> {
  const debug = args.includes("--debug");
  try {
    const r = await resolveOptions(args, Deno.env.toObject(), COMMANDS.flatMap((c) => c.extras ?? []));
    if (r.values.version) {
      console.log(`mailmeet ${denoJson.version}`);
      return 0;
    }
    const cmd = findCommand(r.command);
    if (!cmd) {
      throw new UsageError(
        `Unknown command "${r.command}"; the commands are ${COMMANDS.map((c) => c.name).join(", ")}.`,
      );
    }
    if (r.values.help) {
      console.log(r.explicitCommand ? cmd.help : mainHelp());
      return 0;
    }
    return await cmd.run(r);
  } catch (err) {
    console.error(`mailmeet: ${sentenceFor(err)}`);
    if (debug) console.error(err);
    return exitCodeFor(err);
  }
}

Deno.exit(await main(Deno.args));
