/** `deno task bench [mail|rendezvous|meet|link|nat|host|game|budget|all] [--runs N] [--file-mib N]`: each figure printed beside its reference. */
import { parseArgs } from "node:util";
import { benchMail } from "./mail.ts";
import { benchRendezvous } from "./rendezvous.ts";
import { benchMeet } from "./meet.ts";
import { benchLink } from "./link.ts";
import { benchNat } from "./nat.ts";
import { benchHost } from "./host.ts";
import { benchGame } from "./game_udp.ts";
import { benchBudget } from "./budget.ts";

const { values, positionals } = parseArgs({
  args: Deno.args.filter((a) => a !== "--"),
  allowPositionals: true,
  options: {
    // 30 unless given (bench meet: 10)
    runs: { type: "string" },
    // bench mail: POP3 polling interval, by default the CLI's own (--poll 2)
    poll: { type: "string", default: "2000" },
    // bench host: reference/run pairs, requests per table run, requests queued per capacity run
    pairs: { type: "string", default: "3" },
    requests: { type: "string", default: "300" },
    queued: { type: "string", default: "10000" },
    entry: { type: "string" },
    only: { type: "string", multiple: true },
    // bench game: the file moved while the UDP round trips are measured
    "file-mib": { type: "string", default: "1024" },
  },
});
const runs = Number(values.runs ?? 30);
const which = positionals[0] ?? "all";
const benches: Record<string, () => Promise<void>> = {
  mail: () => benchMail({ runs, pollMs: Number(values.poll) }),
  rendezvous: () => benchRendezvous({ runs }),
  meet: () => benchMeet({ runs: Number(values.runs ?? 10), entry: values.entry }),
  link: () => benchLink({ only: values.only, entry: values.entry }),
  nat: () => benchNat({ runs: Math.min(runs, 10) }),
  budget: () => benchBudget(),
  host: () =>
    benchHost({
      pairs: Number(values.pairs),
      requests: Number(values.requests),
      queued: Number(values.queued),
      entry: values.entry,
      only: values.only,
    }),
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
