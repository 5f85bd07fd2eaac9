/**
 * Game LAN discovery across the group, end to end: a Minecraft world "opened to LAN" on ann's side
 * (a process of its own) is listed by a LAN "game browser" on bob's side (another process), at
 * bob's tunnel port, and the browser joins it through the tunnel. All on one machine: the browser
 * hears ann's own announcement too, so it looks for the one naming bob's local port.
 */
import assert from "node:assert/strict";
import { type CliEvent, spawnCli } from "../../scripts/lib/cli_process.ts";
import { memberApp as app, world } from "../helpers/world.ts";
import { is } from "../helpers/events.ts";
import { lanPair, lanPairSkipReason } from "../helpers/lan_pair.ts";

const FIXTURE = new URL("./fixtures/minecraft_lan.ts", import.meta.url).pathname;
const DATAGRAMS = new URL("./fixtures/lan_datagrams.ts", import.meta.url).pathname;
const SOURCE = new URL("./fixtures/source_lan.ts", import.meta.url).pathname;

/** A fixture process (a game's LAN role): JSON lines out, awaited like the CLI's events. */
function fixture(args: string[], script = FIXTURE, netns?: string) {
  const deno = ["run", "-A", script, ...args];
  const child = new Deno.Command(netns ? "ip" : Deno.execPath(), {
    args: netns ? ["netns", "exec", netns, Deno.execPath(), ...deno] : deno,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const events: CliEvent[] = [];
  const waiters = new Set<() => void>();
  const pumping = (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let i;
      while ((i = rest.indexOf("\n")) >= 0) {
        events.push(JSON.parse(rest.slice(0, i)));
        rest = rest.slice(i + 1);
        for (const w of [...waiters]) w();
      }
    }
  })();
  return {
    events,
    waitFor(pred: (e: CliEvent) => boolean, ms: number, what: string): Promise<CliEvent> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const e = events.find(pred);
          if (!e) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(e);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(events.slice(-5))}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await pumping.catch(() => {});
    },
  };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("[maildir] a Minecraft world opened to LAN on one member is listed by the game browser on another, at its tunnel port, and joined through it", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const worldPort = freePort();
  const motd = `ann - World ${crypto.randomUUID().slice(0, 8)}`;
  await using game = fixture(["world", String(worldPort), motd]);
  await game.waitFor(is("announcing"), 20_000, "the world announcing");
  // ann exposes the world's port; her tunnel hears the announcement by itself (no --game).
  await using ann = app(w, "ann", hostAcct, ["tunnel", "--expose", String(worldPort)]);
  await ann.waitFor(is("lan_heard", { game: "minecraft", motd }), 30_000, "ann hearing her world");
  await using bob = app(w, "bob", hostAcct, ["tunnel", "--local", `0:${worldPort}`]);
  const listening = await bob.waitFor(is("tunnel_listening"), 30_000, "bob's tunnel port");
  const local = Number(listening.port);
  assert.notEqual(local, worldPort);
  await bob.waitFor(is("lan_announced", { peer: "ann", motd, port: local }), 30_000, "bob announcing");
  await using browser = fixture(["browser", "--join", motd, String(local)]);
  const listed = await browser.waitFor(
    (e) => e.event === "listed" && e.motd === motd && e.port === local,
    20_000,
    "the world listed at bob's port",
  );
  assert.equal(listed.from, "127.0.0.1");
  const joined = await browser.waitFor(is("joined"), 20_000, "the browser joining");
  assert.equal(joined.port, local);
  assert.equal(joined.said, `hello from ${motd}`);
  await ann.waitFor(is("tunnel_open", { peer: "bob" }), 10_000, "the join through ann's tunnel");
  // Loop prevention: ann never took bob's replay (another port) for her world, nor bob his own.
  assert.ok(!ann.events.some((e) => e.event === "lan_heard" && e.port !== worldPort));
  assert.ok(!bob.events.some(is("lan_heard")));
});

Deno.test("[maildir] a dedicated Minecraft server (it announces nothing) exposed with --game minecraft is listed on the other side", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serverPort = (server.addr as Deno.NetAddr).port;
  await using ann = app(w, "ann", hostAcct, [
    "tunnel",
    "--expose",
    String(serverPort),
    "--game",
    "minecraft",
  ]);
  await ann.waitFor(is("waiting"), 30_000, "ann waiting");
  await using bob = app(w, "bob", hostAcct, ["tunnel", "--local", `0:${serverPort}`]);
  const local = Number((await bob.waitFor(is("tunnel_listening"), 30_000, "bob's port")).port);
  const motd = "ann's server (mailmeet)";
  await bob.waitFor(is("lan_announced", { peer: "ann", motd, port: local }), 30_000, "bob announcing");
  await using browser = fixture(["browser"]);
  await browser.waitFor((e) => e.event === "listed" && e.motd === motd && e.port === local, 20_000, "listed");
  server.close();
});

Deno.test("[maildir] a Source server's A2S_INFO answer reaches the other member, whose tunnel answers the LAN browser with its own port", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  const serverPort = freePort();
  const name = `ann's CS:S ${crypto.randomUUID().slice(0, 6)}`;
  await using server = fixture(["server", String(serverPort), name], SOURCE);
  await server.waitFor(is("serving"), 20_000, "the server");
  await using ann = app(w, "ann", hostAcct, ["tunnel", "--expose", String(serverPort), "--game", "source"]);
  await ann.waitFor(is("lan_heard", { game: "source", motd: name }), 30_000, "ann asking her server");
  await using bob = app(w, "bob", hostAcct, ["tunnel", "--local", `0:${serverPort}/udp`]);
  const listening = await bob.waitFor(is("tunnel_listening"), 30_000, "bob's tunnel port");
  const local = Number(listening.port);
  await bob.waitFor(is("tunnel_target", { peer: "ann", game: "source" }), 30_000, "bob finding the server");
  await using browser = fixture(["browser", String(local)], SOURCE);
  const info = await browser.waitFor(is("info", { name }), 20_000, "the server in the browser");
  assert.equal(info.port, local, "the game port is the tunnel's, not the server's");
  const played = await browser.waitFor(is("played"), 20_000, "game traffic through the tunnel");
  assert.equal(played.reply, "ok 1");
});

const skip = await lanPairSkipReason();

Deno.test({
  name:
    "[maildir] two machines: --broadcast carries a game's LAN broadcasts both ways and replays them, never in a loop",
  ignore: skip !== undefined,
  async fn() {
    await using w = await world("maildir");
    await using pair = await lanPair();
    const hostAcct = w.account("host", "game.test");
    w.host("host", hostAcct);
    const port = 34197;
    const member = (name: string, machine: { ns: string; ip: string }) =>
      spawnCli(
        name,
        [
          "tunnel",
          ...w.common(w.account(name)),
          "--user",
          name,
          "--via",
          hostAcct.address,
          "--listen",
          `${machine.ip}:0`,
          "--timeout",
          "60",
          "--broadcast",
          String(port),
        ],
        w.env,
        undefined,
        { netns: machine.ns },
      );
    await using ann = member("ann", pair.a);
    await ann.waitFor(is("lan_forwarding"), 30_000, "ann forwarding");
    await using bob = member("bob", pair.b);
    await bob.waitFor(is("connected", { peer: "ann" }), 30_000, "bob linked to ann");
    await ann.waitFor(is("connected", { peer: "bob" }), 30_000, "ann linked to bob");
    // A game on each machine: each broadcasts on its own loopback, which the other cannot hear.
    await using server = fixture(["peer", String(port), "server"], DATAGRAMS, pair.a.ns);
    await using browser = fixture(["peer", String(port), "browser"], DATAGRAMS, pair.b.ns);
    const heardServer = (e: CliEvent) => e.event === "heard" && String(e.text).startsWith("server hello");
    const heardBrowser = (e: CliEvent) => e.event === "heard" && String(e.text).startsWith("browser hello");
    await browser.waitFor(heardServer, 20_000, "the server's broadcast on bob's machine");
    await server.waitFor(heardBrowser, 20_000, "the browser's broadcast on ann's machine");
    // Let a few more rounds go (each side sends every 300 ms), then count.
    await browser.waitFor((e) => e.event === "heard" && e.text === "server hello 8", 20_000, "more rounds");
    // Each broadcast arrives once on the other machine: no copy, no echo of a replay.
    const texts = browser.events.filter(heardServer).map((e) => e.text);
    assert.equal(new Set(texts).size, texts.length, `duplicates: ${texts.join(", ")}`);
    // Nobody's own broadcast came back to it through the other member (that would be a loop).
    const ownSource = (f: typeof server) => String(f.events.find(is("ready"))!.source);
    for (const [f, self] of [[server, "server"], [browser, "browser"]] as const) {
      const echoes = f.events.filter((e) =>
        e.event === "heard" && String(e.text).startsWith(self) && !String(e.from).endsWith(`:${ownSource(f)}`)
      );
      assert.deepEqual(echoes, [], `${self} heard its own broadcast come back`);
    }
    assert.ok(
      !ann.events.some(is("lan_replayed", { peer: "ann" })) &&
        !bob.events.some(is("lan_replayed", { peer: "bob" })),
    );
  },
});

Deno.test({
  name:
    "[maildir] two machines: a Minecraft world opened to LAN on ann's is listed on bob's, where only the tunnel announces it, and joined",
  ignore: skip !== undefined,
  async fn() {
    await using w = await world("maildir");
    await using pair = await lanPair();
    const hostAcct = w.account("host", "game.test");
    w.host("host", hostAcct);
    const motd = `ann - World ${crypto.randomUUID().slice(0, 8)}`;
    const member = (name: string, machine: { ns: string; ip: string }, args: string[]) =>
      spawnCli(
        name,
        [
          "tunnel",
          ...w.common(w.account(name)),
          "--user",
          name,
          "--via",
          hostAcct.address,
          "--listen",
          `${machine.ip}:0`,
          "--timeout",
          "60",
          ...args,
        ],
        w.env,
        undefined,
        { netns: machine.ns },
      );
    // Each machine its own: the world and bob's tunnel both use Minecraft's usual port.
    await using game = fixture(["world", "25565", motd], FIXTURE, pair.a.ns);
    await game.waitFor(is("announcing"), 20_000, "the world announcing");
    await using ann = member("ann", pair.a, ["--expose", "25565"]);
    await ann.waitFor(is("lan_heard", { motd }), 30_000, "ann hearing her world");
    await using bob = member("bob", pair.b, ["--local", "25565"]);
    await bob.waitFor(is("lan_announced", { peer: "ann", motd, port: 25565 }), 30_000, "bob announcing");
    await using browser = fixture(["browser", "--join", motd, "25565"], FIXTURE, pair.b.ns);
    const listed = await browser.waitFor(is("listed", { motd }), 20_000, "the world listed on bob's machine");
    assert.equal(listed.from, "127.0.0.1", "announced by bob's tunnel on his own machine");
    const joined = await browser.waitFor(is("joined"), 20_000, "the browser joining");
    assert.equal(joined.said, `hello from ${motd}`);
  },
});
