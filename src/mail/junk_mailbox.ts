/**
 * An inbox read together with its junk folder (issue 15): marker mail the provider filed as spam is
 * listed, fetched and deleted like mail in the inbox, and a push in either folder wakes the reader.
 * Each folder keeps its own connection (IDLE watches one selected folder, RFC 2177). Only what
 * list() returned is ever touched, so other mail in the junk folder is never touched.
 */
import type { Mailbox, MessageInfo } from "./mailbox.ts";

/** Ids of junk-folder messages carry this prefix; inbox ids never contain "/". */
const JUNK_PREFIX = "junk/";

export class JunkAwareMailbox implements Mailbox {
  readonly label: string;
  readonly deleteBatch?: number;

  constructor(readonly inbox: Mailbox, readonly junk: Mailbox, readonly junkName: string) {
    this.label = inbox.label;
    this.deleteBatch = inbox.deleteBatch;
  }

  async list(marker: string): Promise<MessageInfo[]> {
    const [mine, junk] = await Promise.all([this.inbox.list(marker), this.junk.list(marker)]);
    return [...mine, ...junk.map((m) => ({ ...m, id: JUNK_PREFIX + m.id, junk: this.junkName }))];
  }

  async listReports(): Promise<MessageInfo[]> {
    // Bounces are the inbox's business: a junk folder full of other bounces is not ours to judge.
    return await (this.inbox.listReports?.() ?? Promise.resolve([]));
  }

  async fetch(id: string, maxBytes: number): Promise<Uint8Array> {
    const [box, inner] = this.#route(id);
    return await box.fetch(inner, maxBytes);
  }

  async delete(ids: readonly string[]): Promise<void> {
    const { mine, junk } = this.#split(ids);
    await this.inbox.delete(mine);
    await this.junk.delete(junk);
  }

  async commit(): Promise<void> {
    await this.inbox.commit();
    await this.junk.commit();
  }

  async quarantine(ids: readonly string[], folder: string): Promise<void> {
    const { mine, junk } = this.#split(ids);
    if (this.inbox.quarantine) await this.inbox.quarantine(mine, folder);
    if (this.junk.quarantine) await this.junk.quarantine(junk, folder);
  }

  /** Yields when either folder may have new mail (each watched on its own connection). */
  async *watch(signal: AbortSignal): AsyncIterable<void> {
    const its = [this.inbox.watch(signal), this.junk.watch(signal)].map((w) => w[Symbol.asyncIterator]());
    const next = its.map((it, i) => it.next().then((r) => ({ r, i })));
    try {
      while (!signal.aborted) {
        const { r, i } = await Promise.race(next);
        if (r.done) return;
        next[i] = its[i].next().then((r) => ({ r, i }));
        yield;
      }
    } finally {
      for (const p of next) p.catch(() => {});
      await Promise.allSettled(its.map((it) => it.return?.()));
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.inbox.close(), this.junk.close()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #route(id: string): [Mailbox, string] {
    return id.startsWith(JUNK_PREFIX) ? [this.junk, id.slice(JUNK_PREFIX.length)] : [this.inbox, id];
  }

  #split(ids: readonly string[]): { mine: string[]; junk: string[] } {
    const mine: string[] = [], junk: string[] = [];
    for (const id of ids) {
      if (id.startsWith(JUNK_PREFIX)) junk.push(id.slice(JUNK_PREFIX.length));
      else mine.push(id);
    }
    return { mine, junk };
  }
}
