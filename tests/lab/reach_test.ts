/**
 * Reaching peers behind home routers, end to end: the bundled CLI as processes inside the NAT lab's
 * network namespaces (tests/helpers/natlab.ts). Mail goes through a maildir spool on the shared
 * filesystem, so only the links cross the routers. Every process gets the lab's STUN servers and
 * may ask routers for port mappings; nothing leaves the lab's documentation address ranges.
 *
 * Needs root and ip/nft (CI has both): without them the tests are skipped with the reason.
 */
import assert from "node:assert/strict";
import type { CliEvent } from "../../scripts/lib/cli_process.ts";
import { labSkipReason } from "../helpers/natlab.ts";
import { is } from "../helpers/events.ts";
import { KINDS, meeting, siteName } from "../helpers/lab_meeting.ts";

const skip = await labSkipReason();
if (skip) console.warn(`tests/lab/reach_test.ts skipped: ${skip}`);
const labTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: skip !== undefined, fn });

const connectedTo = (peer: string) => (e: CliEvent) => e.event === "connected" && e.peer === peer;

labTest(
  "every pair of home routers links: directly, except two symmetric NATs, which link through the host's relay",
  async () => {
    await using m = await meeting(
      KINDS.flatMap((nat) => [1, 2].map((i) => ({ name: siteName(nat, i), nat }))),
    );
    const rows: string[] = [];
    let n = 0;
    for (const earlier of KINDS) {
      for (const newcomer of KINDS) {
        n++;
        // A fresh host per pair: the table holds only these two (no one who left earlier).
        const { address: via, proc: host } = await m.host(`host${n}`);
        const a = m.node(`early${n}`, siteName(earlier, 1), earlier, via, ["join", "--timeout", "0"]);
        await a.waitFor(is("waiting"), 30_000, "the earlier peer waiting");
        const b = m.node(`late${n}`, siteName(newcomer, 2), newcomer, via, ["join", "--timeout", "60"]);
        const sent = Date.now();
        const cb = await b.waitFor(connectedTo(`early${n}`), 45_000, `${newcomer} reaching ${earlier}`);
        const ca = await a.waitFor(connectedTo(`late${n}`), 10_000, `${earlier} reached by ${newcomer}`);
        rows.push(
          `${earlier} ← ${newcomer}: ${cb.path}/${cb.transport}/${cb.kind} in ${Date.now() - sent} ms`,
        );
        const bothSymmetric = earlier === "symmetric" && newcomer === "symmetric";
        assert.equal(cb.path, bothSymmetric ? "relay" : "direct", rows.at(-1) ?? "");
        assert.equal(ca.path, cb.path, "both ends agree on the path");
        for (const p of [a, b, host]) await p[Symbol.asyncDispose]();
      }
    }
    console.log(rows.join("\n"));
  },
);

labTest("chat and a file go through a relayed pair, end to end encrypted", async () => {
  await using m = await meeting([{ name: "syma", nat: "symmetric" }, { name: "symb", nat: "symmetric" }]);
  const { address: via } = await m.host("host");
  const file = `${m.dir}/map.bin`;
  const big = new Uint8Array(3 * 1024 * 1024);
  for (let o = 0; o < big.length; o += 65536) crypto.getRandomValues(big.subarray(o, o + 65536));
  await Deno.writeFile(file, big);
  const out = `${m.dir}/in`;
  const ann = m.node("ann", "syma", "symmetric", via, ["receive", "--out", out, "--yes", "--timeout", "0"]);
  await ann.waitFor(is("waiting"), 30_000, "ann waiting");
  const bob = m.node("bob", "symb", "symmetric", via, ["send", file, "--to", "ann", "--timeout", "60"]);
  const linked = await bob.waitFor(connectedTo("ann"), 45_000, "bob reaching ann");
  assert.equal(linked.path, "relay");
  assert.equal((await bob.status).code, 0, bob.stderr.join("\n"));
  assert.equal((await ann.status).code, 0, ann.stderr.join("\n"));
  assert.deepEqual(await Deno.readFile(`${out}/map.bin`), big);

  const carol = m.node("carol", "syma", "symmetric", via, ["chat", "--timeout", "0"], true);
  await carol.waitFor(is("waiting"), 30_000, "carol waiting");
  const dave = m.node("dave", "symb", "symmetric", via, ["chat", "--timeout", "60"], true);
  await dave.waitFor(is("joined", { peer: "carol" }), 45_000, "carol in dave's room");
  await carol.waitFor(is("joined", { peer: "dave" }), 10_000, "dave in carol's room");
  await dave.input("hello through the relay\n");
  const said = await carol.waitFor(is("chat", { peer: "dave" }), 10_000, "dave's line");
  assert.equal(said.text, "hello through the relay");
});

labTest(
  "a port mapping made through the router (UPnP / NAT-PMP) is removed when the node exits",
  async () => {
    await using m = await meeting([{ name: "upnpa", nat: "upnp" }, {
      name: "portb",
      nat: "port-restricted",
    }]);
    const { address: via } = await m.host("host");
    const ann = m.node("ann", "upnpa", "upnp", via, ["join", "--timeout", "0"]);
    const cands = await ann.waitFor(is("candidates"), 30_000, "ann's candidates");
    assert.match(String(cands.port_mapping), /(nat-pmp|upnp) 203\.0\.113\./);
    assert.ok((cands.candidates as string[]).some((c) => c.startsWith("mapped tcp")), JSON.stringify(cands));
    const mapped = await m.lab.portMappings("upnpa");
    assert.ok(mapped.length >= 2, `the router holds ann's TCP and UDP mappings: ${JSON.stringify(mapped)}`);
    // A peer behind an ordinary router reaches ann over the mapped port, by TCP.
    const bob = m.node("bob", "portb", "port-restricted", via, ["join", "--timeout", "60"]);
    const link = await bob.waitFor(connectedTo("ann"), 45_000, "bob reaching ann");
    assert.equal(link.kind, "mapped");
    ann.kill("SIGTERM");
    await ann.status;
    assert.deepEqual(await m.lab.portMappings("upnpa"), [], "no mapping left behind");
  },
);

labTest("a UDP game tunnel crosses a punched path", async () => {
  await using m = await meeting([{ name: "porta", nat: "port-restricted" }, {
    name: "symb",
    nat: "symmetric",
  }]);
  const { address: via } = await m.host("host");
  // The "game server": a UDP echo on ann's machine.
  const echo = m.lab.spawn(m.lab.host("porta").ns, Deno.execPath(), [
    "eval",
    `const s = Deno.listenDatagram({ hostname: "127.0.0.1", port: 27015, transport: "udp" });
     for await (const [d, a] of s) await s.send(d, a);`,
    "--unstable-net",
  ]);
  const ann = m.node("ann", "porta", "port-restricted", via, [
    "tunnel",
    "--expose",
    "27015",
    "--udp",
    "--timeout",
    "0",
  ]);
  await ann.waitFor(is("waiting"), 30_000, "ann waiting");
  const bob = m.node("bob", "symb", "symmetric", via, [
    "tunnel",
    "--local",
    "27016:27015",
    "--udp",
    "--to",
    "ann",
    "--timeout",
    "60",
  ]);
  const link = await bob.waitFor(connectedTo("ann"), 45_000, "bob reaching ann");
  assert.equal(link.path, "direct");
  assert.equal(link.transport, "quic");
  // A "game client" on bob's machine talks to the tunnel's local port.
  const client = await m.lab.exec(m.lab.host("symb").ns, Deno.execPath(), [
    "eval",
    "--unstable-net",
    `const s = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
     let got = 0;
     for (let i = 0; i < 20 && got < 5; i++) {
       await s.send(new TextEncoder().encode("ping " + i), { transport: "udp", hostname: "127.0.0.1", port: 27016 });
       const r = await Promise.race([s.receive(), new Promise((r) => setTimeout(() => r(null), 500))]);
       if (r) got++;
     }
     console.log(got);`,
  ], { check: false });
  assert.ok(
    Number(client.stdout.trim()) >= 5,
    `echoes through the tunnel: ${client.stdout} ${client.stderr}`,
  );
  echo.kill("SIGTERM");
  await echo.status;
});

labTest(
  "behind carrier-grade NAT the router's port mapping is not used, and peers still link directly",
  async () => {
    await using m = await meeting([
      { name: "cgn", nat: "cgnat" },
      { name: "cgnsym", nat: "cgnat", isp: "symmetric" },
      { name: "porta", nat: "port-restricted" },
    ]);
    const { address: via } = await m.host("host");
    const ann = m.node("ann", "porta", "port-restricted", via, ["join", "--timeout", "0"]);
    await ann.waitFor(is("waiting"), 30_000, "ann waiting");
    // A home router behind an ISP's NAT: its UPnP/NAT-PMP offers no public address.
    const bob = m.node("bob", "cgn", "cgnat", via, ["join", "--timeout", "60"]);
    const cands = await bob.waitFor(is("candidates"), 30_000, "bob's candidates");
    assert.equal(cands.port_mapping, undefined, JSON.stringify(cands));
    assert.ok(!(cands.candidates as string[]).some((c) => c.startsWith("mapped")));
    const viaBob = await bob.waitFor(connectedTo("ann"), 45_000, "bob reaching ann");
    assert.equal(viaBob.path, "direct");
    // The same behind an ISP NAT that maps every destination anew: guessing still finds it.
    const carol = m.node("carol", "cgnsym", "cgnat", via, ["join", "--timeout", "60"]);
    const viaCarol = await carol.waitFor(connectedTo("ann"), 45_000, "carol reaching ann");
    assert.equal(viaCarol.path, "direct");
  },
);

labTest("a network that blocks UDP still links, through a relay over TCP", async () => {
  await using m = await meeting([
    { name: "noudp", nat: "port-restricted", blockUdp: true },
    { name: "porta", nat: "port-restricted" },
  ]);
  const { address: via } = await m.host("host");
  const ann = m.node("ann", "porta", "port-restricted", via, ["join", "--timeout", "0"]);
  await ann.waitFor(is("waiting"), 30_000, "ann waiting");
  const bob = m.node("bob", "noudp", "port-restricted", via, ["join", "--timeout", "60"]);
  const cands = await bob.waitFor(is("candidates"), 30_000, "bob's candidates");
  assert.equal(cands.mapping, "unknown", "no STUN answer comes back over UDP");
  const link = await bob.waitFor(connectedTo("ann"), 60_000, "bob reaching ann");
  assert.equal(link.path, "relay");
  await ann.waitFor(connectedTo("bob"), 10_000, "ann reached by bob");
});

labTest(
  "the router forwards ports on request by UPnP and by NAT-PMP alike, and both mappings (TCP and UDP) go at exit",
  async () => {
    await using m = await meeting([{ name: "upnpa", nat: "upnp" }]);
    const fixture = new URL("../fixtures/portmapper_run.ts", import.meta.url).pathname;
    for (const method of ["upnp", "nat-pmp"]) {
      const child = m.lab.spawn(m.lab.host("upnpa").ns, Deno.execPath(), [
        "run",
        "-A",
        fixture,
        method,
        "41000",
        m.lab.host("upnpa").ip,
      ], { stdin: "piped", stdout: "piped" });
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const first = JSON.parse((await lines.read()).value!.trim());
      assert.equal(first.ok, true, JSON.stringify(first));
      assert.equal(first.mapping.method, method);
      const mapped = await m.lab.portMappings("upnpa");
      assert.deepEqual(mapped.map((p) => `${p.protocol} ${p.externalPort}`).sort(), [
        "tcp 41000",
        "udp 41000",
      ]);
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode("go\n"));
      await w.close();
      await child.status;
      lines.releaseLock();
      assert.deepEqual(await m.lab.portMappings("upnpa"), [], `${method}: nothing left on the router`);
    }
  },
);
