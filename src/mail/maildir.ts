/**
 * The embedded default transport: a spool folder holding one standard Maildir per address
 * (spool/<address>/{tmp,new,cur}), so single-machine use and the demo need no mail server, and
 * Dovecot (mail_location = maildir:SPOOL/%Lu) can serve the same folders over IMAP/POP3.
 * Delivery writes in tmp/ and renames into new/ (atomic on one file system); reading moves new/ → cur/.
 */
import { join } from "node:path";
import { setImmediate } from "node:timers";
import { type Account, durationParam } from "./account.ts";
import { isMailAddress } from "./address.ts";
import { MailError } from "./errors.ts";
import type { Mailbox, MailboxOptions, MessageInfo } from "./mailbox.ts";
import { subjectHasMarker } from "./mailbox.ts";
import { isDeliveryReport } from "./dsn.ts";
import { parseHeader } from "./parse.ts";

/** inotify can miss events on some file systems; a slow poll underneath costs little. */
const SAFETY_POLL_MS = 5_000;
const HEADER_READ_BYTES = 16 * 1024;

let counter = 0;

/** The folder that holds `address`'s Maildir in `spool`. */
export function maildirFor(spool: string, address: string): string {
  const a = address.trim().toLowerCase();
  // A path separator or ".." in it would name a folder outside the spool.
  if (!isMailAddress(a) || /[/\\]/.test(a) || a.includes("..")) {
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

/** Maildirs this process made sure of, and spool owners it looked up: not asked again per message. */
const ensured = new Set<string>();
const owners = new Map<string, Promise<{ uid: number; gid: number } | undefined>>();

/**
 * Delivers one raw message into each recipient's new/ folder, durable before it is visible — or,
 * with `later`, visible at once and made durable in the background (`later` receives the promise):
 * concurrent fsyncs share the file system's journal commits, so a sender that can wait for
 * durability in batches (a host, before it deletes requests) pays a fraction of one per message.
 *
 * The file steps are synchronous calls: each is a few microseconds (fsync apart), while an async
 * call costs a hop to a worker thread and back — most of what a reply cost a busy host (issue 12).
 */
export async function deliverToMaildir(
  spool: string,
  recipients: readonly string[],
  raw: Uint8Array,
  later?: (durable: Promise<void>) => void,
): Promise<void> {
  let ownerOf = owners.get(spool);
  if (!ownerOf) owners.set(spool, ownerOf = spoolOwner(spool));
  const owner = await ownerOf;
  for (const rcpt of recipients) {
    const dir = maildirFor(spool, rcpt);
    if (!ensured.has(dir)) {
      await ensureMaildir(dir, owner);
      ensured.add(dir);
    }
    const name = `${uniqueName()},S=${raw.length}`;
    const tmp = join(dir, "tmp", name);
    let f: Deno.FsFile | undefined;
    try {
      try {
        f = writeFile(tmp, raw, owner);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        // The folder went away since we made it (someone cleaned up): make it again, once.
        await ensureMaildir(dir, owner);
        f = writeFile(tmp, raw, owner);
      }
      if (!later) f.syncDataSync();
      Deno.renameSync(tmp, join(dir, "new", name));
    } catch (err) {
      f?.close();
      ensured.delete(dir);
      try {
        Deno.removeSync(tmp);
      } catch {
        // never written
      }
      throw new MailError(`Cannot deliver to the maildir ${dir}: ${(err as Error).message}.`, "rejected", {
        cause: err,
      });
    }
    if (later) {
      const file = f;
      later(file.syncData().finally(() => file.close()));
    } else f.close();
  }
}

/** Creates and writes a file (left open for its fsync). */
function writeFile(path: string, raw: Uint8Array, owner?: { uid: number; gid: number }): Deno.FsFile {
  const f = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
  try {
    let off = 0;
    while (off < raw.length) off += f.writeSync(raw.subarray(off));
    if (owner) Deno.chownSync(path, owner.uid, owner.gid);
    return f;
  } catch (err) {
    f.close();
    throw err;
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
  readonly deleteBatch = 16;
  #dir: string;
  #cache = new Map<string, MessageInfo>();
  /** Ids of delivery status notifications (RFC 3464), noted when their headers are read. */
  #reports = new Set<string>();
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

  async listReports(): Promise<MessageInfo[]> {
    return (await this.#scan()).filter((e) => this.#reports.has(e.info.id)).map((e) => e.info);
  }

  async fetch(id: string, maxBytes: number): Promise<Uint8Array> {
    let path = this.#paths.get(id) ?? (await this.#scan(), this.#paths.get(id));
    if (!path) throw new MailError(`Message ${id} is no longer in ${this.#dir}.`, "not_found");
    let raw = readCapped(path, maxBytes);
    if (raw === undefined) {
      // Moved (new/ → cur/ by another reader) or removed since the last scan.
      await this.#scan();
      path = this.#paths.get(id);
      raw = path === undefined ? undefined : readCapped(path, maxBytes);
      if (raw === undefined || path === undefined) {
        throw new MailError(`Message ${id} is no longer in ${this.#dir}.`, "not_found");
      }
    }
    if (raw === "too_large") {
      throw new MailError(`Message ${id} is over the ${maxBytes}-byte cap; skipped.`, "too_large");
    }
    // Maildir convention: a message that has been read lives in cur/ with an info suffix.
    if (path.includes(`${"/new/"}`)) {
      const name = path.slice(path.lastIndexOf("/") + 1);
      const dest = join(this.#dir, "cur", `${name}:2,S`);
      try {
        Deno.renameSync(path, dest);
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
    let rescanned = false;
    for (const id of this.#pending) {
      // By the path we know (no directory listing per commit: the box may hold thousands); a
      // message moved meanwhile (new/ → cur/ by another reader) is looked up again, once.
      let path = this.#paths.get(id);
      if (path && !removeFile(path) && !rescanned) {
        await this.#scan();
        rescanned = true;
        path = this.#paths.get(id);
        if (path) removeFile(path);
      }
      this.#paths.delete(id);
      this.#cache.delete(id);
    }
    this.#pending.clear();
  }

  async *watch(signal: AbortSignal): AsyncIterable<void> {
    if (signal.aborted) return;
    let watcher: Deno.FsWatcher | undefined;
    try {
      // Every delivery ends with a rename into new/ (tmp → new); cur/ only changes when a reader
      // (we) moves or removes what it read, which is no news.
      watcher = Deno.watchFs(join(this.#dir, "new"), { recursive: false });
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
        // The events already queued (a burst of deliveries) join this wake-up. Not through a
        // timer: even setTimeout(0) waits out the 1 ms minimum and the timer's slack, 2.2 ms here
        // (setImmediate: 7 µs), on both the host's and the newcomer's wake-up of every meeting
        // (bench meet). What arrives during the pass makes one more wake-up after it (dirty).
        if (dirty && !signal.aborted) await new Promise((r) => setImmediate(r));
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

  /**
   * The messages in new/ and cur/, in arrival order. Synchronous file calls, like delivery's: a
   * listing and a header read are microseconds each, while every async call is a hop to a worker
   * thread and back — most of a lone wake-up's cost on a quiet spool (bench meet).
   */
  // deno-lint-ignore require-await
  async #scan(): Promise<Entry[]> {
    const found: Entry[] = [];
    const seen = new Set<string>();
    for (const sub of ["new", "cur"]) {
      const folder = join(this.#dir, sub);
      let items: Deno.DirEntry[] = [];
      try {
        items = [...Deno.readDirSync(folder)];
      } catch {
        continue;
      }
      for (const item of items) {
        if (!item.isFile || item.name.startsWith(".")) continue;
        const id = baseId(item.name);
        const path = join(folder, item.name);
        let info = this.#cache.get(id);
        if (!info) {
          info = this.#readInfo(id, path, item.name);
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
        this.#reports.delete(id);
      }
    }
    return found;
  }

  #readInfo(id: string, path: string, name: string): MessageInfo | undefined {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch {
      return undefined; // moved or deleted by another reader between readDir and open
    }
    try {
      const size = sizeFromName(name) ?? file.statSync().size;
      const buf = new Uint8Array(Math.min(HEADER_READ_BYTES, Math.max(size, 1)));
      let got = 0;
      while (got < buf.length) {
        const n = file.readSync(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      const block = buf.subarray(0, got);
      const head = parseHeader(block);
      if (isDeliveryReport(block)) this.#reports.add(id);
      return { id, subject: head.subject, size, date: head.date };
    } finally {
      file.close();
    }
  }
}

/**
 * A small file's bytes (synchronous: a few microseconds for our few KiB, see deliverToMaildir), or
 * "too_large" without reading it, or undefined when it is not there.
 */
function readCapped(path: string, maxBytes: number): Uint8Array | "too_large" | undefined {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    const size = f.statSync().size;
    if (size > maxBytes) return "too_large";
    const buf = new Uint8Array(size);
    let got = 0;
    while (got < size) {
      const n = f.readSync(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    f.close();
  }
}

/** Removes a file; false when it was not there. */
function removeFile(path: string): boolean {
  try {
    Deno.removeSync(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

export async function openMaildirMailbox(account: Account, opts: MailboxOptions): Promise<Mailbox> {
  if (!opts.address) {
    throw new MailError("A maildir inbox needs your own address: pass --address you@example.org.", "config");
  }
  const poll = durationParam(account, "poll", opts.pollIntervalMs ?? 1000);
  return await new MaildirMailbox(account.path, opts.address, poll).open();
}
