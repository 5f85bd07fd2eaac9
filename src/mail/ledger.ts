/**
 * The mail budget's counts on disk: one small JSON file in the data folder, shared by every node of
 * this user (a host and a join on the same account count against one budget). Read before each
 * change and replaced atomically, so two processes lose at most a count to a race, never the file.
 */
import { dirname } from "node:path";
import type { Ledger, LedgerRecord } from "./budget.ts";

interface LedgerFile {
  version: 1;
  accounts: Record<string, LedgerRecord>;
}

export class FileLedger implements Ledger {
  constructor(readonly path: string) {}

  load(account: string): LedgerRecord {
    const r = this.#read().accounts[account];
    return r && Array.isArray(r.sent) ? r : { sent: [] };
  }

  save(account: string, record: LedgerRecord): void {
    const file = this.#read();
    file.accounts[account] = record;
    const tmp = `${this.path}.${Deno.pid}.tmp`;
    try {
      Deno.mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      Deno.writeTextFileSync(tmp, JSON.stringify(file) + "\n", { mode: 0o600 });
      Deno.renameSync(tmp, this.path);
    } catch {
      // Counting is a safeguard: a read-only data folder must not stop the mail (memory still counts).
      this.#fallback = file;
    }
  }

  #fallback?: LedgerFile;

  #read(): LedgerFile {
    try {
      const parsed = JSON.parse(Deno.readTextFileSync(this.path)) as LedgerFile;
      if (parsed?.version === 1 && parsed.accounts && typeof parsed.accounts === "object") return parsed;
    } catch {
      // none yet, or unreadable: start afresh
    }
    return this.#fallback ?? { version: 1, accounts: {} };
  }
}
