import { flag, requireAddress } from "../context.ts";
import type { Resolved } from "../options.ts";
import { openTable, tablePath } from "../host_table.ts";
import { formatHostPort } from "../../protocol/candidate.ts";
import { UsageError } from "../errors.ts";

export const TABLE_HELP = `mailmeet table — print the host's peer table

The only place e-mail addresses are ever shown: they stay on the host and never go into replies.

Example:
  mailmeet table --address lan-host@game.test          (or --db FILE)
  mailmeet table --db host.db --json`;

export function tableCommand(r: Resolved): number {
  const address = r.values.db ? "unused@local" : requireAddress(r);
  const path = tablePath(r, address);
  // Opening creates the file: a node that never hosted has none, and that is what to say.
  try {
    Deno.statSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new UsageError(
      r.values.db
        ? `There is no host table at ${path}; check --db.`
        : `${address} is not a host on this machine: it keeps no table (${path} does not exist); start one with \`mailmeet --host\`, or name a table with --db.`,
    );
  }
  using table = openTable(r, address);
  const rows = table.entries(Date.now());
  if (flag(r, "json")) {
    for (const e of rows) {
      console.log(JSON.stringify({
        event: "entry",
        user: e.user,
        address: formatHostPort(e.host, e.port),
        email: e.email,
        flagged: e.flagged,
        stored: new Date(e.stored).toISOString(),
      }));
    }
    return 0;
  }
  if (rows.length === 0) {
    console.log(`The table ${path} is empty: no peer asked this host in the last --ttl.`);
    return 0;
  }
  const head = ["USER", "ADDRESS", "E-MAIL", "FLAG", "STORED"];
  const body = rows.map((e) => [
    e.user,
    formatHostPort(e.host, e.port),
    e.email,
    e.flagged ? "failed" : "",
    new Date(e.stored).toISOString().replace("T", " ").slice(0, 19),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  for (const row of [head, ...body]) console.log(row.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
  return 0;
}
