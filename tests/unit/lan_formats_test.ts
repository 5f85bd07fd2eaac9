import assert from "node:assert/strict";
import { formatMinecraftAd, parseMinecraftAd } from "../../src/apps/lan/minecraft.ts";
import { challengeOf, infoQuery, isInfoQuery, parseInfo, withGamePort } from "../../src/apps/lan/a2s.ts";
import { answerInfoQuery } from "../../src/apps/lan/source_lan.ts";
import { LoopGuard } from "../../src/apps/lan/loop_guard.ts";

const hex = (s: string) => Uint8Array.from(s.trim().split(/\s+/).map((h) => parseInt(h, 16)));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("a Minecraft 'Open to LAN' announcement as a client sends it parses; ours reads the same way", () => {
  // As Minecraft Java sends it (wiki.vg, Server List Ping, "Ping via LAN"): colour codes and all.
  const captured = new TextEncoder().encode("[MOTD]ann - \u00a7bNew World[/MOTD][AD]41873[/AD]");
  assert.deepEqual(parseMinecraftAd(captured), { motd: "ann - \u00a7bNew World", port: 41873 });
  const ours = formatMinecraftAd({ motd: "ann - \u00a7bNew World", port: 25566 });
  assert.equal(text(ours), "[MOTD]ann - \u00a7bNew World[/MOTD][AD]25566[/AD]");
  // The client takes "missing no" for a missing MOTD, and drops a packet without a port.
  assert.deepEqual(parseMinecraftAd(new TextEncoder().encode("[AD]25565[/AD]")), {
    motd: "missing no",
    port: 25565,
  });
  assert.equal(parseMinecraftAd(new TextEncoder().encode("[MOTD]x[/MOTD]")), undefined);
  assert.equal(parseMinecraftAd(new TextEncoder().encode("[MOTD]x[/MOTD][AD]99999[/AD]")), undefined);
  // A MOTD cannot close its tag early and move the port.
  assert.deepEqual(parseMinecraftAd(formatMinecraftAd({ motd: "a[/MOTD][AD]1[/AD]", port: 7 })), {
    motd: "a1[/AD]",
    port: 7,
  });
});

/** The A2S_INFO answer of the Valve Developer Community's "Server queries" page (Counter-Strike: Source). */
const CSS_ANSWER = hex(`
  FF FF FF FF 49 02 67 61 6D 65 32 78 73 2E 63 6F 6D 20 43 6F 75 6E 74 65 72 2D 53 74 72 69 6B 65
  20 53 6F 75 72 63 65 20 23 31 00 64 65 5F 64 75 73 74 00 63 73 74 72 69 6B 65 00 43 6F 75 6E 74
  65 72 2D 53 74 72 69 6B 65 3A 20 53 6F 75 72 63 65 00 F0 00 05 10 04 64 6C 00 00 31 2E 30 2E 30
  2E 32 32 00`);

Deno.test("the documented A2S_INFO answer parses field by field", () => {
  assert.deepEqual(parseInfo(CSS_ANSWER), {
    protocol: 2,
    name: "game2xs.com Counter-Strike Source #1",
    map: "de_dust",
    folder: "cstrike",
    game: "Counter-Strike: Source",
    id: 240,
    players: 5,
    maxPlayers: 16,
    bots: 4,
    version: "1.0.0.22",
  });
  assert.equal(parseInfo(CSS_ANSWER.subarray(0, 30)), undefined, "a cut answer is none");
});

Deno.test("an A2S_INFO answer that names its game port is rewritten to the tunnel's local port", () => {
  // The same answer with EDF 0x80 and game port 27015 (0x6987 LE), as newer servers send.
  const withPort = new Uint8Array([...CSS_ANSWER, 0x80, 0x87, 0x69]);
  assert.equal(parseInfo(withPort)?.port, 27015);
  const rewritten = withGamePort(withPort, 27016);
  assert.equal(parseInfo(rewritten)?.port, 27016);
  assert.equal(parseInfo(rewritten)?.name, "game2xs.com Counter-Strike Source #1");
  assert.deepEqual(withGamePort(CSS_ANSWER, 27016), CSS_ANSWER, "no port named: unchanged");
});

Deno.test("A2S_INFO queries, with and without the challenge, are recognised; other datagrams are not", () => {
  // "ÿÿÿÿTSource Engine Query\0", as the page shows it.
  const query = hex("FF FF FF FF 54 53 6F 75 72 63 65 20 45 6E 67 69 6E 65 20 51 75 65 72 79 00");
  assert.deepEqual(infoQuery(), query);
  assert.ok(isInfoQuery(query));
  assert.ok(isInfoQuery(infoQuery(0x4a4b4c4d)));
  assert.ok(!isInfoQuery(hex("FF FF FF FF 55 FF FF FF FF")), "A2S_PLAYER is not an info query");
  assert.equal(challengeOf(hex("FF FF FF FF 41 4D 4C 4B 4A")), 0x4a4b4c4d);
  assert.equal(answerInfoQuery(query, CSS_ANSWER, 27016), CSS_ANSWER);
  assert.equal(answerInfoQuery(hex("01 02 03"), CSS_ANSWER, 27016), undefined);
  assert.equal(answerInfoQuery(query, undefined, 27016), undefined);
});

Deno.test("the loop guard knows our replays: from our socket, or the same bytes within the window", () => {
  let now = 1_000;
  const guard = new LoopGuard(() => now, 5_000);
  guard.addSource("0.0.0.0", 40000);
  const ad = new TextEncoder().encode("[MOTD]x[/MOTD][AD]1[/AD]");
  const other = new TextEncoder().encode("[MOTD]y[/MOTD][AD]1[/AD]");
  assert.ok(guard.isEcho(other, { address: "127.0.0.1", port: 40000 }), "our replay socket on loopback");
  assert.ok(!guard.isEcho(other, { address: "192.0.2.9", port: 40000 }), "another machine's same port");
  guard.replayed(ad);
  assert.ok(
    guard.isEcho(ad, { address: "192.0.2.2", port: 5555 }),
    "our bytes back through another interface",
  );
  assert.ok(!guard.isEcho(other, { address: "192.0.2.2", port: 5555 }));
  now += 5_001;
  assert.ok(!guard.isEcho(ad, { address: "192.0.2.2", port: 5555 }), "the same announcement later is new");
});
