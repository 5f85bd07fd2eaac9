/** The chat app (src/apps/chat.ts): what it says into the node's room and what it keeps of it. */
import assert from "node:assert/strict";
import { ChatRoom, cleanChatText, type RoomHost } from "../../src/apps/chat.ts";
import type { AppEvent, AppSink, Member } from "../../src/apps/app_host.ts";

/** A room that records what is said and lets the test speak for it. */
function room() {
  const said: string[] = [];
  const listeners = new Set<AppSink>();
  const host: RoomHost = {
    say: (text) => said.push(text),
    subscribe: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  return { host, said, tell: (e: AppEvent) => listeners.forEach((l) => l(e)), listeners };
}

function member(user: string) {
  const gone = Promise.withResolvers<string | undefined>();
  const m: Member = {
    user,
    address: "mem",
    route: { path: "direct", transport: "tcp", kind: "lan", rttMs: 1 },
    mux: { open: () => undefined as never, sendDatagram: () => true, peer: user, isClosed: false },
    closed: gone.promise,
    services: [],
  };
  return { m, leave: () => gone.resolve(undefined), closed: gone.promise };
}

Deno.test("a line is said to the room without its trailing line break; nothing is said before the room is joined", () => {
  const r = room();
  const chat = new ChatRoom({ emit: () => {} });
  chat.say("too early\n");
  chat.connect(r.host);
  chat.say("hello\r\n");
  chat.say("two\nlines");
  assert.deepEqual(r.said, ["hello", "two\nlines"]);
});

Deno.test("the room's events reach the app as they come, and its member list follows the last room event", () => {
  const r = room();
  const heard: AppEvent[] = [];
  const chat = new ChatRoom({ emit: (e) => heard.push(e) });
  chat.connect(r.host);
  r.tell({ event: "room", members: ["ann", "bob"] });
  r.tell({ event: "chat", peer: "ann", text: "hi", sent: 1 });
  assert.deepEqual(chat.users, ["ann", "bob"]);
  r.tell({ event: "room", members: ["bob"] });
  assert.deepEqual(chat.users, ["bob"]);
  assert.deepEqual(heard.map((e) => e.event), ["room", "chat", "room"]);
});

Deno.test("closing the chat stops hearing the room", async () => {
  const r = room();
  const heard: AppEvent[] = [];
  const chat = new ChatRoom({ emit: (e) => heard.push(e) });
  chat.connect(r.host);
  await chat.close();
  assert.equal(r.listeners.size, 0);
  r.tell({ event: "chat", peer: "ann", text: "hi", sent: 1 });
  assert.deepEqual(heard, []);
});

Deno.test("the chat keeps the members it holds a link to, and forgets one when its link ends", async () => {
  const chat = new ChatRoom({ emit: () => {} });
  const ann = member("ann");
  const bob = member("bob");
  chat.added(ann.m);
  chat.added(bob.m);
  assert.deepEqual(chat.links().map((m) => m.user), ["ann", "bob"]);
  ann.leave();
  await ann.closed; // the app's then() on it was registered first, so it has run by now
  assert.deepEqual(chat.links().map((m) => m.user), ["bob"]);
});

Deno.test("a relinked member is not forgotten when its old link ends", async () => {
  const chat = new ChatRoom({ emit: () => {} });
  const old = member("ann");
  const relinked = member("ann");
  chat.added(old.m);
  chat.added(relinked.m);
  old.leave();
  await old.closed;
  assert.equal(chat.links()[0], relinked.m);
});

Deno.test("control characters that could repaint a terminal are taken out of chat text; tabs stay", () => {
  // Without its ESC an escape sequence is plain text.
  assert.equal(cleanChatText("a\x1b[2Jb\rc\nd\te\x7f\x9b"), "a[2Jbcd\te");
});
