/**
 * The embedded default transport: a spool folder holding one standard Maildir per address
 * (spool/<address>/{tmp,new,cur}), so single-machine use and the demo need no mail server, and
 * Dovecot (mail_location = maildir:SPOOL/%Lu) can serve the same folders over IMAP/POP3.
 * Delivery writes in tmp/ and renames into new/ (atomic on one file system); reading moves new/ → cur/.
 */
import { join } from "node:path";
import { type Account, durationParam } from "./account.ts";
import { MailError } from "./errors.ts";
import type { Mailbox, MailboxOptions, MessageInfo } from "./mailbox.ts";
import { subjectHasMarker } from "./mailbox.ts";
import { parseHeader } from "./parse.ts";

/** inotify can miss events on some file systems; a slow poll underneath costs little. */
const SAFETY_POLL_MS = 5_000;
const WATCH_DEBOUNCE_MS = 20;
const HEADER_READ_BYTES = 16 * 1024;

let counter = 0;

/** The folder that holds `address`'s Maildir in `spool`. */
export function maildirFor(spool: string, address: string): string {
  const a = address.trim().toLowerCase();
  if (!/^[^\s/\\]+@[^\s/\\]+$/.test(a) || a.includes("..")) {
    throw new MailError(`"${address}" is not an e-mail address that can name a maildir folder.`, "config");
  }
  return join(spool, a);
}

/**
 * The spool's owner: when a mail server (Dovecot as its mail user) serves the same folders and we
 * run as root, what we create must belong to that user or the server cannot deliver or move it.
 */
async function spoolOwner(spool: string): Promise<{ uid: number; gid: number } | undefined> {
  if (Deno.build.os === "windows" || Deno.uid() !== 0) return undefined;
  try {
    const st = await Deno.stat(spool);
    return st.uid !== null && st.gid !== null && st.uid !== 0 ? { uid: st.uid, gid: st.gid } : undefined;
  } catch {
    return undefined;
  }
}

async function ensureMaildir(dir: string, owner?: { uid: number; gid: number }): Promise<void> {
  let existed = true;
  try {
    await Deno.stat(join(dir, "new"));
  } catch {
    existed = false;
  }
  for (const sub of ["tmp", "new", "cur"]) await Deno.mkdir(join(dir, sub), { recursive: true });
  if (owner && !existed) {
    for (const p of [dir, join(dir, "tmp"), join(dir, "new"), join(dir, "cur")]) {
      await Deno.chown(p, owner.uid, owner.gid);
    }
  }
}

/** A unique file name per Maildir convention: time.unique.host. */
function uniqueName(): string {
  const now = Date.now();
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  // The counter fills the microseconds, so one process's deliveries within a millisecond keep their order.
  return `${Math.floor(now / 1000)}.M${
    (now % 1000) * 1000 + (++counter % 1000)
  }P${Deno.pid}Q${counter}R${rand}.${Deno.hostname().replace(/[/:]/g, "_")}`;
}

/** Delivers one raw message into each recipient's new/ folder. */
export async function deliverToMaildir(
  spool: string,
  recipients: readonly string[],
  raw: Uint8Array,
): Promise<void> {
  const owner = await spoolOwner(spool);
  for (const rcpt of recipients) {
    const dir = maildirFor(spool, rcpt);
    await ensureMaildir(dir, owner);
    const name = `${uniqueName()},S=${raw.length}`;
    const tmp = join(dir, "tmp", name);
    try {
      await Deno.writeFile(tmp, raw, { mode: 0o600 });
      if (owner) await Deno.chown(tmp, owner.uid, owner.gid);
      // Durability before the message is visible: the host deletes requests only after the reply is "sent".
      using f = await Deno.open(tmp, { read: true });
      await f.sync();
      await Deno.rename(tmp, join(dir, "new", name));
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw new MailError(`Cannot deliver to the maildir ${dir}: ${(err as Error).message}.`, "rejected", {
        cause: err,
      });
    }
  }
}

interface Entry {
  info: MessageInfo;
  path: string;
}

function baseId(name: string): string {
  const colon = name.indexOf(":2,");
  return colon >= 0 ? name.slice(0, colon) : name;
}

function sizeFromName(name: string): number | undefined {
  const m = /,S=(\d+)/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Delivery order of two Maildir names "secs.M<usecs>…" (numbers compared as numbers), else by text. */
export function compareNames(a: string, b: string): number {
  const ma = /^(\d+)\.M(\d+)/.exec(a);
  const mb = /^(\d+)\.M(\d+)/.exec(b);
  if (ma && mb) {
    const d = Number(ma[1]) - Number(mb[1]) || Number(ma[2]) - Number(mb[2]);
    if (d !== 0) return d;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

export class MaildirMailbox implements Mailbox {
  readonly label: string;
  #dir: string;
  #cache = new Map<string, MessageInfo>();
  #paths = new Map<string, string>();
  #pending = new Set<string>();
  #pollMs: number;
  #closed = false;

  constructor(readonly spool: string, readonly address: string, pollMs: number) {
    this.#dir = maildirFor(spool, address);
    this.label = `maildir://${spool} (${address})`;
    this.#pollMs = pollMs;
  }

  async open(): Promise<this> {
    try {
      await ensureMaildir(this.#dir, await spoolOwner(this.spool));
    } catch (err) {
      throw new MailError(`Cannot open the maildir ${this.#dir}: ${(err as Error).message}.`, "config", {
        cause: err,
      });
    }
    return this;
  }

  async list(marker: string): Promise<MessageInfo[]> {
    const entries = await this.#scan();
    const out: MessageInfo[] = [];
    for (const e of entries) if (subjectHasMarker(e.info.subject, marker)) out.push(e.info);
    return out;
  }

  async fetch(id: string, maxBytes: number): Promise<Uint8Array> {
    let path = this.#paths.get(id) ?? (await this.#scan(), this.#paths.get(id));
    if (!path) throw new MailError(`Message ${id} is no longer in ${this.#dir}.`, "not_found");
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(path);
    } catch {
      await this.#scan();
      path = this.#paths.get(id);
      if (!path) throw new MailError(`Message ${id} is no longer in ${this.#dir}.`, "not_found");
      stat = await Deno.stat(path);
    }
    if (stat.size > maxBytes) {
      throw new MailError(
        `Message ${id} is ${stat.size} bytes, over the ${maxBytes}-byte cap; skipped.`,
        "too_large",
      );
    }
    const raw = await Deno.readFile(path);
    // Maildir convention: a message that has been read lives in cur/ with an info suffix.
    if (path.includes(`${"/new/"}`)) {
      const name = path.slice(path.lastIndexOf("/") + 1);
      const dest = join(this.#dir, "cur", `${name}:2,S`);
      try {
        await Deno.rename(path, dest);
        this.#paths.set(id, dest);
      } catch {
        // another reader moved it first; the content is the same
      }
    }
    return raw;
  }

  delete(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.#pending.add(id);
    return Promise.resolve();
  }

  async commit(): Promise<void> {
    if (this.#pending.size === 0) return;
    await this.#scan();
    for (const id of this.#pending) {
      const path = this.#paths.get(id);
      if (path) await Deno.remove(path).catch(() => {});
      this.#paths.delete(id);
      this.#cache.delete(id);
    }
    this.#pending.clear();
  }

  async *watch(signal: AbortSignal): AsyncIterable<void> {
    if (signal.aborted) return;
    let watcher: Deno.FsWatcher | undefined;
    try {
      watcher = Deno.watchFs([join(this.#dir, "new"), join(this.#dir, "cur")], { recursive: false });
    } catch {
      watcher = undefined; // fall back to polling alone
    }
    let wake: (() => void) | undefined;
    let dirty = true;
    const poke = () => {
      dirty = true;
      wake?.();
    };
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    const pump = (async () => {
      if (!watcher) return;
      try {
        for await (const ev of watcher) {
          if (ev.kind === "create" || ev.kind === "modify" || ev.kind === "rename") poke();
        }
      } catch {
        // watcher closed
      }
    })();
    const pollMs = watcher ? SAFETY_POLL_MS : this.#pollMs;
    try {
      while (!signal.aborted && !this.#closed) {
        if (dirty) {
          dirty = false;
          yield;
          continue;
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            dirty = true;
            resolve();
          }, pollMs);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = undefined;
        // Let a burst of events settle into one wake-up.
        if (dirty && !signal.aborted) await new Promise((r) => setTimeout(r, WATCH_DEBOUNCE_MS));
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      watcher?.close();
      await pump;
    }
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #scan(): Promise<Entry[]> {
    const found: Entry[] = [];
    const seen = new Set<string>();
    for (const sub of ["new", "cur"]) {
      const folder = join(this.#dir, sub);
      let items: Deno.DirEntry[] = [];
      try {
        items = await Array.fromAsync(Deno.readDir(folder));
      } catch {
        continue;
      }
      for (const item of items) {
        if (!item.isFile || item.name.startsWith(".")) continue;
        const id = baseId(item.name);
        const path = join(folder, item.name);
        let info = this.#cache.get(id);
        if (!info) {
          info = await this.#readInfo(id, path, item.name);
          if (!info) continue;
          this.#cache.set(id, info);
        }
        seen.add(id);
        this.#paths.set(id, path);
        found.push({ info, path });
      }
    }
    // Maildir names start with the delivery time: name order is arrival order (the roles rely on it).
    found.sort((a, b) => compareNames(a.info.id, b.info.id));
    for (const id of [...this.#paths.keys()]) {
      if (!seen.has(id)) {
        this.#paths.delete(id);
        this.#cache.delete(id);
      }
    }
    return found;
  }

  async #readInfo(id: string, path: string, name: string): Promise<MessageInfo | undefined> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch {
      return undefined; // moved or deleted by another reader between readDir and open
    }
    try {
      const size = sizeFromName(name) ?? (await file.stat()).size;
      const buf = new Uint8Array(Math.min(HEADER_READ_BYTES, Math.max(size, 1)));
      let got = 0;
      while (got < buf.length) {
        const n = await file.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      const head = parseHeader(buf.subarray(0, got));
      return { id, subject: head.subject, size, date: head.date };
    } finally {
      file.close();
    }
  }
}

export async function openMaildirMailbox(account: Account, opts: MailboxOptions): Promise<Mailbox> {
  if (!opts.address) {
    throw new MailError("A maildir inbox needs your own address: pass --address you@example.org.", "config");
  }
  const poll = durationParam(account, "poll", opts.pollIntervalMs ?? 1000);
  return await new MaildirMailbox(account.path, opts.address, poll).open();
}
