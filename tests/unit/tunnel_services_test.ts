import assert from "node:assert/strict";
import { ask, taggedEcho } from "../helpers/tagged_echo.ts";
import { createSocket } from "node:dgram";
import type { Buffer } from "node:buffer";
import {
  channelPort,
  channelSession,
  datagramChannel,
  decodeServices,
  encodeServices,
  exposeChannels,
  localChannels,
  takesChannel,
} from "../../src/apps/tunnel_services.ts";
import { datagramApp, type LinkApp, streamApp } from "../../src/apps/app_host.ts";
import { TunnelExpose, TunnelLocal } from "../../src/apps/tunnel.ts";
import { ControlServer } from "../../src/node/control.ts";
import { ControlClient } from "../../src/node/control_client.ts";
import type { AppEvent } from "../../src/apps/app_host.ts";
import { linkedPair } from "../helpers/linked_pair.ts";

Deno.test("an expose line round-trips; bad entries and unknown games are dropped, not the line", () => {
  const list = [
    { proto: "tcp" as const, port: 25565, game: "minecraft", announce: "A Minecraft Server" },
    { proto: "udp" as const, port: 27015 },
  ];
  const wire = JSON.parse(JSON.stringify(encodeServices(list)));
  assert.deepEqual(decodeServices(wire), list);
  assert.deepEqual(
    decodeServices({ t: "expose", list: [{ p: 0 }, { p: "80" }, null, { p: 80, g: "Bad Name!" }] }),
    [{ proto: "tcp", port: 80 }],
  );
  assert.equal(decodeServices({ t: "other", list: [] }), undefined);
});

Deno.test("a datagram channel carries port, direction and session; each side takes only its own", () => {
  const toExpose = datagramChannel(25565, false, 7);
  const toLocal = datagramChannel(25565, true, 7);
  assert.equal(channelPort(toLocal), 25565);
  assert.equal(channelSession(toLocal), 7);
  assert.ok(takesChannel([exposeChannels(25565)], toExpose));
  assert.ok(!takesChannel([exposeChannels(25565)], toLocal));
  assert.ok(!takesChannel([exposeChannels(27015)], toExpose));
  assert.ok(takesChannel([localChannels(25565)], toLocal));
  assert.ok(takesChannel([localChannels(undefined)], datagramChannel(65535, true, 32767)));
  assert.ok(!takesChannel([localChannels(undefined)], toExpose));
});

Deno.test("streams and datagrams go to the tunnel of their port; a stream naming no port to the first", () => {
  const a: LinkApp = {
    protocols: ["tunnel"],
    route: { meta: { port: 1000 }, channels: [exposeChannels(1000)] },
    datagram() {},
  };
  const b: LinkApp = {
    protocols: ["tunnel"],
    route: { meta: { port: 2000 }, channels: [exposeChannels(2000)] },
    datagram() {},
  };
  const chat: LinkApp = { protocols: ["chat"] };
  const apps = [chat, a, b];
  assert.equal(streamApp(apps, "tunnel", { port: 2000 }), b);
  assert.equal(streamApp(apps, "tunnel", { port: 1000 }), a);
  assert.equal(streamApp(apps, "tunnel", {}), a);
  assert.equal(streamApp(apps, "tunnel", { port: 3000 }), undefined);
  assert.equal(streamApp(apps, "chat", {}), chat);
  assert.equal(datagramApp(apps, datagramChannel(2000, false, 1)), b);
  assert.equal(datagramApp(apps, datagramChannel(3000, false, 1)), undefined);
});

function waitEvent(events: AppEvent[], pred: (e: AppEvent) => boolean) {
  const got = Promise.withResolvers<AppEvent>();
  const sink = (e: AppEvent) => {
    events.push(e);
    if (pred(e)) got.resolve(e);
  };
  return { sink, got: got.promise };
}

Deno.test("a local tunnel with no --to finds the member that exposes its port; two tunnels share one link", async () => {
  await using pair = await linkedPair();
  await using web = taggedEcho("web");
  await using game = taggedEcho("game");
  const bobWeb = new TunnelExpose({ port: web.port, udp: false, emit: () => {} });
  const bobGame = new TunnelExpose({ port: game.port, udp: false, emit: () => {} });
  pair.theirs.attach(bobWeb);
  pair.theirs.attach(bobGame);
  const events: AppEvent[] = [];
  const found = waitEvent(events, (e) => e.event === "tunnel_target");
  const toGame = new TunnelLocal({ port: 0, remote: game.port, udp: false, emit: found.sink });
  const toWeb = new TunnelLocal({ port: 0, remote: web.port, udp: false, emit: () => {} });
  await toGame.start();
  await toWeb.start();
  pair.ours.attach(toGame);
  pair.ours.attach(toWeb);
  assert.deepEqual(await found.got, { event: "tunnel_target", peer: "bob", port: game.port, proto: "TCP" });
  assert.equal(await ask(toGame.port, "hello"), "game:hello");
  assert.equal(await ask(toWeb.port, "hello"), "web:hello");
  for (const t of [toGame, toWeb, bobWeb, bobGame]) await t.close();
});

Deno.test("a local tunnel for a port nobody exposes has no target, and says so when used", async () => {
  await using pair = await linkedPair();
  await using web = taggedEcho("web");
  const bobWeb = new TunnelExpose({ port: web.port, udp: false, emit: () => {} });
  pair.theirs.attach(bobWeb);
  const events: AppEvent[] = [];
  const found = waitEvent(events, (e) => e.event === "tunnel_target");
  const toWeb = new TunnelLocal({ port: 0, remote: web.port, udp: false, emit: found.sink });
  const toNothing = new TunnelLocal({ port: 0, remote: 1, udp: false, emit: () => {} });
  pair.ours.attach(toNothing);
  pair.ours.attach(toWeb);
  await found.got; // bob's services are known now
  assert.equal(toNothing.target(), undefined);
  assert.equal(toNothing.whyNoTarget(), "no linked member exposes TCP port 1");
  for (const t of [toWeb, toNothing, bobWeb]) await t.close();
});

Deno.test("an app attached over the control socket learns what members expose, and when it changes", async () => {
  const dir = await Deno.makeTempDir();
  await using pair = await linkedPair();
  const server = await ControlServer.open({
    dir,
    identity: { address: "me@x.test", user: "me" },
    host: pair.ours,
    hello: () => ({
      pid: 1,
      since: new Date(0).toISOString(),
      address: "me@x.test",
      user: "me",
      command: "join",
    }),
  });
  try {
    const client = await ControlClient.connect(dir, { address: "me@x.test", user: "me" });
    const changed = Promise.withResolvers<void>();
    await using attached = client!.attach({ servicesChanged: () => changed.resolve() });
    await attached.ready;
    const bobGame = new TunnelExpose({ port: 25565, udp: false, emit: () => {}, game: "minecraft" });
    pair.theirs.attach(bobGame);
    await changed.promise;
    assert.deepEqual(attached.members()[0].services, [{ proto: "tcp", port: 25565, game: "minecraft" }]);
    await bobGame.close();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two UDP tunnels on one link: each source's datagrams come back from its own service", async () => {
  await using pair = await linkedPair();
  const servers = ["a", "b"].map((tag) => {
    const s = createSocket("udp4");
    s.on("message", (msg: Buffer, from) => s.send(`${tag}:${msg}`, from.port, from.address));
    return { tag, s, ready: new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r())) };
  });
  await Promise.all(servers.map((s) => s.ready));
  const ports = servers.map((s) => s.s.address().port);
  const exposes = ports.map((port) => new TunnelExpose({ port, udp: true, emit: () => {} }));
  for (const e of exposes) pair.theirs.attach(e);
  const locals = ports.map((remote) => new TunnelLocal({ port: 0, remote, udp: true, emit: () => {} }));
  for (const l of locals) {
    await l.start();
    pair.ours.attach(l);
  }
  const client = createSocket("udp4");
  await new Promise<void>((r) => client.bind(0, "127.0.0.1", () => r()));
  const got: string[] = [];
  const two = Promise.withResolvers<void>();
  client.on("message", (m: Buffer) => {
    got.push(String(m));
    if (got.length === 2) two.resolve();
  });
  // The services may still be on their way: send until both answered.
  const timer = setInterval(() => {
    if (!got.some((g) => g.startsWith("a:"))) client.send("x", locals[0].port, "127.0.0.1");
    if (!got.some((g) => g.startsWith("b:"))) client.send("y", locals[1].port, "127.0.0.1");
  }, 20);
  await two.promise;
  clearInterval(timer);
  assert.deepEqual(got.sort(), ["a:x", "b:y"]);
  client.close();
  for (const s of servers) s.s.close();
  for (const t of [...locals, ...exposes]) await t.close();
});

Deno.test("a member named by --to that told nothing yet is the target, with no port named (its tunnel takes the stream)", () => {
  const member = {
    user: "bob",
    address: "mem",
    route: { path: "direct" as const, transport: "tcp" as const, kind: "lan", rttMs: 1 },
    mux: { open: () => undefined as never, sendDatagram: () => true, peer: "bob", isClosed: false },
    closed: new Promise<string | undefined>(() => {}),
    services: [],
  };
  const named = new TunnelLocal({ port: 0, udp: false, emit: () => {}, to: "bob" });
  named.added(member);
  assert.deepEqual(named.target(), { user: "bob", mux: member.mux });
  const remapped = new TunnelLocal({ port: 0, remote: 25565, udp: false, emit: () => {}, to: "bob" });
  remapped.added(member);
  assert.equal(remapped.target()?.port, 25565);
  const unnamed = new TunnelLocal({ port: 0, remote: 25565, udp: false, emit: () => {} });
  unnamed.added(member);
  assert.equal(unnamed.target(), undefined, "without --to only a member that exposes the port");
});
