/** The node's mail budget from the options: --mail-budget a day, counted in the data folder. */
import { join } from "node:path";
import { MailBudget } from "../mail/budget.ts";
import { FileLedger } from "../mail/ledger.ts";
import { dataDir, num } from "./context.ts";
import type { Resolved } from "./options.ts";

/** The file every node of this user counts its mail in (per account inside). */
export function ledgerPath(dir: string = dataDir()): string {
  return join(dir, "mail-sent.json");
}

export function openMailBudget(r: Resolved, account: string): MailBudget {
  return new MailBudget({ account, limit: num(r, "mail-budget"), ledger: new FileLedger(ledgerPath()) });
}
