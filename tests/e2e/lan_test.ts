/**
 * Game LAN discovery across the group, end to end: a Minecraft world "opened to LAN" on ann's side
 * (a process of its own) is listed by a LAN "game browser" on bob's side (another process), at
 * bob's tunnel port, and the browser joins it through the tunnel. All on one machine: the browser
 * hears ann's own announcement too, so it looks for the one naming bob's local port.
 */
import assert from "node:assert/strict";
import { type CliEvent, type CliProcess, spawnCli } from "../../scripts/lib/cli_process.ts";
import { type Account, type World, world } from "../helpers/world.ts";
import { is } from "../helpers/events.ts";

const FIXTURE = new URL("./fixtures/minecraft_lan.ts", import.meta.url).pathname;

function app(w: World, name: string, host: Account, args: string[]): CliProcess {
  return spawnCli(name, [
    args[0],
    ...w.common(w.account(name)),
    "--user",
    name,
    "--via",
    host.address,
    "--listen",
    "127.0.0.1:0",
    "--timeout",
    "60",
    ...args.slice(1),
  ], w.env);
}

/** A fixture process (a game's LAN role): JSON lines out, awaited like the CLI's events. */
function fixture(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FIXTURE, ...args],
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
