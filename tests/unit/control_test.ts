import assert from "node:assert/strict";
import type { MuxStream } from "../../src/net/mux.ts";
import { ControlServer } from "../../src/node/control.ts";
import { ControlClient } from "../../src/node/control_client.ts";
import { RoomService } from "../../src/node/room.ts";
import type { AppEvent } from "../../src/apps/app_host.ts";
import { linkedPair } from "../helpers/linked_pair.ts";

async function readAll(s: MuxStream): Promise<string> {
  let text = "";
  for (let c = await s.read(); c !== null; c = await s.read()) text += new TextDecoder().decode(c);
  return text;
}

Deno.test("an app attached over the control socket sees the node's members and uses their links both ways", async () => {
  const dir = await Deno.makeTempDir();
  const { ours, theirs } = await linkedPair();
  await using _server = {
    server: await ControlServer.open({
      dir,
      identity: { address: "me@x.test", user: "me" },
      host: ours,
      hello: () => ({
        pid: 1,
        since: new Date(0).toISOString(),
        address: "me@x.test",
        user: "me",
        command: "join",
      }),
    }),
    async [Symbol.asyncDispose]() {
      await this.server.close();
    },
  };
  const client = await ControlClient.connect(dir, { address: "me@x.test", user: "me" });
  assert.ok(client, "the node answers");
  assert.equal(client.hello.command, "join");
  const got = Promise.withResolvers<string>();
  await using attached = client.attach({
    protocols: ["echo"],
    stream: (s, m) =>
      void readAll(s).then((t) => got.resolve(`${m.user} ${s.protocol}: ${t} (${JSON.stringify(s.meta)})`)),
  });
  await attached.ready;
  assert.deepEqual(attached.members().map((m) => m.user), ["bob"]);

  // The member opens an "echo" stream to us: it reaches the attached app, metadata intact.
  const toUs = theirs.member("me")!.mux.open("echo", { n: 1 });
  await toUs.write(new TextEncoder().encode("hello app"));
  toUs.closeWrite();
  assert.equal(await got.promise, 'bob echo: hello app ({"n":1})');

  // The app opens a stream to the member, through the node.
  const arrived = Promise.withResolvers<string>();
  theirs.attach({ protocols: ["note"], stream: (s) => void readAll(s).then(arrived.resolve) });
  const out = attached.members()[0].mux.open("note", {});
  await out.write(new TextEncoder().encode("hello bob"));
  out.closeWrite();
  assert.equal(await arrived.promise, "hello bob");

  await Promise.all([ours.close(), theirs.close()]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("no node runs: connecting finds none (a stale socket file is not a node)", async () => {
  const dir = await Deno.makeTempDir();
  assert.equal(await ControlClient.connect(dir, { address: "me@x.test", user: "me" }), undefined);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a chat attached over the control socket says into the node's room and hears it, over a real link", async () => {
  const dir = await Deno.makeTempDir();
  const ours = new RoomService({ user: "me" });
  const theirs = new RoomService({ user: "bob" });
  const pair = await linkedPair();
  pair.ours.attach(ours);
  pair.theirs.attach(theirs);
  const server = await ControlServer.open({
    dir,
    identity: { address: "me@x.test", user: "me" },
    host: pair.ours,
    room: ours,
    hello: () => ({
      pid: 1,
      since: new Date(0).toISOString(),
      address: "me@x.test",
      user: "me",
      command: "join",
    }),
  });
  const client = await ControlClient.connect(dir, { address: "me@x.test", user: "me" });
  assert.ok(client);
  const heard: AppEvent[] = [];
  const waiters = new Set<() => void>();
  const when = (pred: (e: AppEvent) => boolean) => {
    const done = Promise.withResolvers<AppEvent>();
    const check = () => {
      const e = heard.find(pred);
      if (e) done.resolve(e);
    };
    waiters.add(check);
    check();
    return done.promise;
  };
  const room = client.room();
  room.subscribe((e) => {
    heard.push(e);
    for (const w of waiters) w();
  });
  await when((e) => e.event === "joined" && e.peer === "bob");
  const atBob = Promise.withResolvers<AppEvent>();
  theirs.subscribe((e) => e.event === "chat" && atBob.resolve(e));
  room.say("hello from the attached chat");
  assert.deepEqual((await when((e) => e.event === "said")).text, "hello from the attached chat");
  const got = await atBob.promise;
  assert.deepEqual([got.peer, got.text, got.via], ["me", "hello from the attached chat", undefined]);
  theirs.say("hi back");
  assert.equal((await when((e) => e.event === "chat")).text, "hi back");
  await client.close();
  await server.close();
  ours.close();
  theirs.close();
  await Promise.all([pair.ours.close(), pair.theirs.close()]);
  await Deno.remove(dir, { recursive: true });
});
