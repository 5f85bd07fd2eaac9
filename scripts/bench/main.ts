/** `deno task bench [mail|rendezvous|link|nat|game|all] [--runs N] [--file-mib N]`: each figure printed beside its reference. */
import { parseArgs } from "node:util";
import { benchMail } from "./mail.ts";
import { benchRendezvous } from "./rendezvous.ts";
import { benchLink } from "./link.ts";
import { benchNat } from "./nat.ts";
import { benchGame } from "./game_udp.ts";

const { values, positionals } = parseArgs({
  args: Deno.args.filter((a) => a !== "--"),
  allowPositionals: true,
  options: {
    runs: { type: "string", default: "30" },
    poll: { type: "string", default: "500" },
    "file-mib": { type: "string", default: "1024" },
  },
});
const runs = Number(values.runs);
const which = positionals[0] ?? "all";
const benches: Record<string, () => Promise<void>> = {
  mail: () => benchMail({ runs, pollMs: Number(values.poll) }),
  rendezvous: () => benchRendezvous({ runs }),
  link: () => benchLink(),
  nat: () => benchNat({ runs: Math.min(runs, 10) }),
  game: () => benchGame({ fileMib: Number(values["file-mib"]) }),
};
if (which !== "all" && !benches[which]) {
  console.error(`Unknown benchmark "${which}"; choose ${Object.keys(benches).join(", ")} or all.`);
  Deno.exit(1);
}
for (const [name, run] of Object.entries(benches)) {
  if (which !== "all" && which !== name) continue;
  console.log(`\n== ${name}`);
  await run();
}
