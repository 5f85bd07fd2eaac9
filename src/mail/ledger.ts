/**
 * The mail budget's counts on disk: one small JSON file in the data folder, shared by every node of
 * this user (a host and a join on the same account count against one budget). Replaced atomically
 * at each change, so two processes lose at most a count to a race, never the file.
 *
 * A host asks the budget several times per mail it sends: the file is parsed again only when it
 * changed since we last read or wrote it (another process counted), which one stat() tells. And a
 * busy host sends hundreds of mails a second: its counts are written at most every SAVE_EVERY_MS
 * (and at flush(), which the CLI calls on its way out), not at every mail — a rename costs a
 * millisecond or more on some file systems. A count not written yet is this process's alone for
 * that long; a crash loses at most that much counting.
 */
import { dirname } from "node:path";
import { type Ledger, type LedgerRecord, SENT_GROUP_MS, type SentGroup } from "./budget.ts";

interface LedgerFile {
  version: 1;
  accounts: Record<string, LedgerRecord>;
}

/** The longest a count waits to be written. */
export const SAVE_EVERY_MS = 250;

export class FileLedger implements Ledger {
  /** The file as last read or written, and the stat() that says whether it is still that. */
  #cached?: { file: LedgerFile; stamp: string };
  #fallback?: LedgerFile;
  /** Counts saved but not written yet. */
  #unwritten?: LedgerFile;
  #writtenAt = -Infinity;
  #timer?: ReturnType<typeof setTimeout>;

  constructor(readonly path: string, readonly clock: () => number = () => performance.now()) {}

  load(account: string): LedgerRecord {
    const r = this.#read().accounts[account];
    const sent = r && Array.isArray(r.sent) ? groups(r.sent) : [];
    return { ...r, sent };
  }

  save(account: string, record: LedgerRecord): void {
    const file = this.#read();
    file.accounts[account] = { ...record, sent: record.sent.map((g) => [...g]) };
    this.#unwritten = file;
    const wait = this.#writtenAt + SAVE_EVERY_MS - this.clock();
    if (wait <= 0) this.flush();
    else if (this.#timer === undefined) {
      const timer = this.#timer = setTimeout(() => this.flush(), wait);
      Deno.unrefTimer(timer); // flush() on the way out writes what is left
    }
  }

  /** Writes the counts not written yet. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const file = this.#unwritten;
    if (!file) return;
    this.#unwritten = undefined;
    this.#writtenAt = this.clock();
    const tmp = `${this.path}.${Deno.pid}.tmp`;
    try {
      Deno.mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      Deno.writeTextFileSync(tmp, JSON.stringify(file) + "\n", { mode: 0o600 });
      Deno.renameSync(tmp, this.path);
      this.#cached = { file, stamp: this.#stamp() ?? "" };
    } catch {
      // Counting is a safeguard: a read-only data folder must not stop the mail (memory still counts).
      this.#fallback = file;
      this.#cached = undefined;
    }
  }

  #read(): LedgerFile {
    if (this.#unwritten) return this.#unwritten; // newer than the file
    const stamp = this.#stamp();
    if (stamp !== undefined && this.#cached?.stamp === stamp) return this.#cached.file;
    try {
      const parsed = JSON.parse(Deno.readTextFileSync(this.path)) as LedgerFile;
      if (parsed?.version === 1 && parsed.accounts && typeof parsed.accounts === "object") {
        if (stamp !== undefined) this.#cached = { file: parsed, stamp };
        return parsed;
      }
    } catch {
      // none yet, or unreadable: start afresh
    }
    return this.#fallback ?? { version: 1, accounts: {} };
  }

  /** Identifies the file's current content: inode (a rename replaces it), size, change time. */
  #stamp(): string | undefined {
    try {
      const st = Deno.statSync(this.path);
      return `${st.ino}:${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
    } catch {
      return undefined;
    }
  }
}

/**
 * The sent groups of a record, also from a file written before they were grouped, which kept one
 * timestamp per recipient (grouped here as record() would have).
 */
function groups(sent: readonly unknown[]): SentGroup[] {
  const out: SentGroup[] = [];
  for (const g of sent) {
    if (Array.isArray(g) && g.length === 3 && g.every((x) => typeof x === "number")) {
      out.push([g[0], g[1], g[2]]);
    } else if (typeof g === "number") {
      const last = out.at(-1);
      if (last && g - last[0] < SENT_GROUP_MS && g >= last[1]) {
        last[1] = g;
        last[2]++;
      } else out.push([g, g, 1]);
    }
  }
  return out;
}
