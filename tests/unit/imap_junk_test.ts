/** Finding the junk folder (RFC 6154 SPECIAL-USE, usual names) and reading it beside the inbox. */
import assert from "node:assert/strict";
import { decodeMailboxName, encodeMailboxName } from "../../src/mail/imap/encode.ts";
import { findJunkFolder, type ListedMailbox, parseListResponse } from "../../src/mail/imap/junk.ts";
import { JunkAwareMailbox } from "../../src/mail/junk_mailbox.ts";
import { type Mailbox, type MessageInfo, subjectHasMarker } from "../../src/mail/mailbox.ts";

const box = (name: string, ...attributes: string[]): ListedMailbox => ({ name, attributes });

Deno.test("the folder the server marks \\Junk (RFC 6154) is the junk folder, whatever its name", () => {
  const boxes = [box("INBOX"), box("Spam"), box("Courrier indésirable", "\\HASNOCHILDREN", "\\JUNK")];
  assert.equal(findJunkFolder(boxes), "Courrier indésirable");
});

Deno.test("without SPECIAL-USE a usual name is taken (Gmail, Outlook, plain), never a \\Noselect one or the folder read", () => {
  assert.equal(
    findJunkFolder([box("INBOX"), box("[Gmail]", "\\NOSELECT"), box("[Gmail]/Spam")]),
    "[Gmail]/Spam",
  );
  assert.equal(findJunkFolder([box("INBOX"), box("Junk E-mail")]), "Junk E-mail");
  assert.equal(findJunkFolder([box("INBOX"), box("junk")]), "junk");
  assert.equal(findJunkFolder([box("INBOX"), box("Junk", "\\NOSELECT")]), undefined);
  assert.equal(findJunkFolder([box("Junk")], "Junk"), undefined);
  assert.equal(findJunkFolder([box("INBOX"), box("Archive"), box("Sent", "\\SENT")]), undefined);
});

Deno.test("a LIST response gives the name decoded from modified UTF-7 and the attributes upper-cased", () => {
  const enc = new TextEncoder();
  const listed = parseListResponse({
    kind: "data",
    name: "LIST",
    values: [
      { type: "list", items: [{ type: "atom", value: "\\Junk" }] },
      { type: "string", bytes: enc.encode("/"), literal: false },
      { type: "string", bytes: enc.encode(encodeMailboxName("Courrier indésirable")), literal: false },
    ],
  });
  assert.deepEqual(listed, { name: "Courrier indésirable", attributes: ["\\JUNK"] });
  for (const name of ["Junk", "A&B", "日本語/迷惑メール", "Spam & co"]) {
    assert.equal(decodeMailboxName(encodeMailboxName(name)), name);
  }
});

/** A folder in memory: subjects by id. */
class Folder implements Mailbox {
  readonly label: string;
  deleted: string[] = [];
  committed = false;
  constructor(name: string, readonly mail: Map<string, string>) {
    this.label = name;
  }
  list(marker: string): Promise<MessageInfo[]> {
    return Promise.resolve(
      [...this.mail].filter(([, s]) => subjectHasMarker(s, marker)).map(([id, subject]) => ({
        id,
        subject,
        size: 1,
      })),
    );
  }
  fetch(id: string): Promise<Uint8Array> {
    return Promise.resolve(new TextEncoder().encode(`${this.label}:${id}`));
  }
  delete(ids: readonly string[]): Promise<void> {
    this.deleted.push(...ids);
    return Promise.resolve();
  }
  commit(): Promise<void> {
    this.committed = true;
    return Promise.resolve();
  }
  async *watch(): AsyncIterable<void> {
    yield;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

Deno.test("marker mail in the junk folder is listed, fetched and deleted beside the inbox's; other junk is never touched", async () => {
  const inbox = new Folder("inbox", new Map([["7:1", "mailmeet rendezvous"], ["7:2", "lunch?"]]));
  const junk = new Folder("junk", new Map([["9:1", "mailmeet rendezvous"], ["9:2", "You won!"]]));
  const both = new JunkAwareMailbox(inbox, junk, "Junk");
  const listed = await both.list("mailmeet rendezvous");
  assert.deepEqual(listed.map((m) => [m.id, m.junk]), [["7:1", undefined], ["junk/9:1", "Junk"]]);
  assert.equal(new TextDecoder().decode(await both.fetch("junk/9:1", 100)), "junk:9:1");
  await both.delete(listed.map((m) => m.id));
  await both.commit();
  assert.deepEqual(inbox.deleted, ["7:1"]);
  assert.deepEqual(junk.deleted, ["9:1"], "only the marker mail; the other junk stays");
  assert.ok(inbox.committed && junk.committed);
});
