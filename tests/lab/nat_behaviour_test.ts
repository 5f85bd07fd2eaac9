/**
 * The NAT lab's routers behave as their names say. Behaviour terms are RFC 4787's (mapping: which
 * public address:port a LAN socket gets; filtering: who may then send to it); the probes test them
 * the RFC 5780 way: two STUN addresses for mapping (§4.3), CHANGE-REQUEST for filtering (§4.4).
 *
 * Needs root and `ip`/`nft`: without them every test here is skipped with the reason. Run alone:
 *   flock /tmp/mailmeet-suite.lock deno test -A tests/lab/
 */
import assert from "node:assert/strict";
import {
  hostOf,
  isAlive,
  labSkipReason,
  listNamespaces,
  type NatKind,
  type NatLab,
  natLab,
  portMapper,
  SETTLE_MS,
  tcpConnect,
  tcpListener,
  TURN_CLIENT,
  udpProbe,
} from "../helpers/natlab.ts";

const skip = await labSkipReason();
if (skip) console.warn(`tests/lab skipped: ${skip}`);
const labTest = (name: string, fn: (t: Deno.TestContext) => Promise<void>) =>
  Deno.test({ name, ignore: skip !== undefined, fn });

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const ip = (hostPort: string) => hostPort.slice(0, hostPort.lastIndexOf(":"));
const port = (hostPort: string) => Number(hostPort.slice(hostPort.lastIndexOf(":") + 1));

type Mapping = "endpoint-independent" | "address-and-port-dependent";
type Filtering = "endpoint-independent" | "address-dependent" | "address-and-port-dependent";

interface Expected {
  nat: NatKind;
  isp?: "symmetric";
  mapping: Mapping;
  filtering: Filtering;
}

/** What RFC 4787 behaviour each kind must show. */
const KINDS: Record<string, Expected> = {
  none: { nat: "none", mapping: "endpoint-independent", filtering: "endpoint-independent" },
  fullcone: { nat: "full-cone", mapping: "endpoint-independent", filtering: "endpoint-independent" },
  restricted: { nat: "restricted-cone", mapping: "endpoint-independent", filtering: "address-dependent" },
  portrestr: {
    nat: "port-restricted",
    mapping: "endpoint-independent",
    filtering: "address-and-port-dependent",
  },
  symmetric: {
    nat: "symmetric",
    mapping: "address-and-port-dependent",
    filtering: "address-and-port-dependent",
  },
  forward: { nat: "forward", mapping: "endpoint-independent", filtering: "address-and-port-dependent" },
  upnp: { nat: "upnp", mapping: "endpoint-independent", filtering: "address-and-port-dependent" },
  cgnat: { nat: "cgnat", mapping: "endpoint-independent", filtering: "address-and-port-dependent" },
  cgnatsym: {
    nat: "cgnat",
    isp: "symmetric",
    mapping: "address-and-port-dependent",
    filtering: "address-and-port-dependent",
  },
};

/** The address the internet sees for a site's host 0. */
function publicIpOf(lab: NatLab, site: string): string {
  return KINDS[site].nat === "none" ? lab.host(site).ip : lab.router(site).publicIp;
}

labTest(
  "each NAT kind maps and filters as RFC 4787 names it (RFC 5780 tests against two STUN addresses)",
  async (t) => {
    await using lab = await natLab({
      sites: Object.entries(KINDS).map(([name, k]) => ({
        name,
        nat: k.nat,
        ...(k.isp ? { isp: k.isp } : {}),
      })),
    });
    const [stun1, stun2] = lab.stunServers;
    for (const [site, want] of Object.entries(KINDS)) {
      await t.step(
        `${site} (${want.nat}${want.isp ? ", symmetric ISP" : ""}): ${want.mapping} mapping`,
        async () => {
          await using probe = await udpProbe(lab, lab.host(site).ns);
          const a = await probe.stun(stun1);
          const b = await probe.stun(stun2);
          assert(a && b, "both STUN addresses answer");
          assert.deepEqual(ip(a.mapped), publicIpOf(lab, site), "the server sees the site's public address");
          if (want.mapping === "endpoint-independent") {
            assert.deepEqual(a.mapped, b.mapped, "one public port for both destinations");
            assert.deepEqual(
              port(a.mapped),
              port(probe.local),
              "the router keeps the source port (RFC 4787 §4.2.1)",
            );
          } else {
            assert.notEqual(port(a.mapped), port(b.mapped), "a new public port per destination");
          }
        },
      );
      await t.step(`${site} (${want.nat}): ${want.filtering} filtering`, async () => {
        // A fresh socket that has only ever sent to stun1's address and port.
        await using probe = await udpProbe(lab, lab.host(site).ns);
        assert(await probe.stun(stun1), "the STUN server answers");
        const fromOtherPort = await probe.changedAnswerArrives(stun1, "port");
        const fromOtherAddress = await probe.changedAnswerArrives(stun1, "ip");
        assert.deepEqual(
          { fromOtherPort, fromOtherAddress },
          {
            fromOtherPort: want.filtering !== "address-and-port-dependent",
            fromOtherAddress: want.filtering === "endpoint-independent",
          },
        );
      });
    }
  },
);

labTest("a port-restricted router drops unsolicited UDP and TCP from the internet", async () => {
  await using lab = await natLab({ sites: [{ name: "home", nat: "port-restricted" }], publicHosts: ["web"] });
  const home = lab.host("home");
  const router = lab.router("home");
  await using listener = await tcpListener(lab, home.ns, "0.0.0.0:7000");
  const tcp = await tcpConnect(lab, lab.publicHost("web").ns, `${router.wanIp}:7000`, { timeoutMs: 1000 });
  assert.deepEqual(tcp.connected, false);
  assert.deepEqual(listener.events.filter((e) => e.event === "accepted").length, 0);

  await using inside = await udpProbe(lab, home.ns, { bind: "0.0.0.0:7001" });
  await using outside = await udpProbe(lab, lab.publicHost("web").ns);
  await outside.datagram(`${router.wanIp}:7001`, "unsolicited");
  await new Promise((r) => setTimeout(r, SETTLE_MS)); // it has crossed the router before the host speaks
  // Control: once the host has sent to `outside`, the same sender gets through.
  await inside.datagram(outside.local.replace("0.0.0.0", lab.publicHost("web").ip), "hello");
  assert(await outside.received("hello"));
  await outside.datagram(`${router.wanIp}:7001`, "answer");
  assert(await inside.received("answer"), "an answer from the contacted address:port gets in");
  assert.deepEqual(inside.events.filter((e) => e.event === "recv" && e.text === "unsolicited").length, 0);
});

labTest(
  "a full-cone router lets any internet host reach a port its LAN host has used, over UDP and TCP",
  async () => {
    await using lab = await natLab({
      sites: [{ name: "home", nat: "full-cone" }],
      publicHosts: ["first", "second"],
    });
    const home = lab.host("home");
    const wan = lab.router("home").wanIp;
    const first = lab.publicHost("first");
    const second = lab.publicHost("second");

    await using inside = await udpProbe(lab, home.ns, { bind: "0.0.0.0:7100" });
    await using stranger = await udpProbe(lab, second.ns);
    await inside.datagram(`${first.ip}:9`, "open the mapping");
    await stranger.datagram(`${wan}:7100`, "from a stranger");
    const got = await inside.received("from a stranger");
    assert(got, "a host the LAN socket never contacted gets through");
    assert.deepEqual(ip(String(got.from)), second.ip, "and is seen with its own address (no hairpin SNAT)");

    // TCP: one outbound connection from port 7200 opens the mapping; a listener on 7200 then accepts
    // a connection from a host it never contacted.
    await using _firstListener = await tcpListener(lab, first.ns, "0.0.0.0:80");
    const out = await tcpConnect(lab, home.ns, `${first.ip}:80`, { localPort: 7200 });
    assert(out.connected, `the host connects out: ${out.error}`);
    await using homeListener = await tcpListener(lab, home.ns, "0.0.0.0:7200");
    const inbound = await tcpConnect(lab, second.ns, `${wan}:7200`);
    assert(inbound.connected, `a stranger connects in: ${inbound.error}`);
    assert.deepEqual(inbound.greeting, `hello from ${home.ip}:7200`);
    const accepted = await homeListener.expect((e) => e.event === "accepted", "accepted connection");
    assert.deepEqual(ip(String(accepted.from)), second.ip);
  },
);

labTest("a forwarded port reaches host 0 over TCP and UDP, and other ports stay closed", async () => {
  await using lab = await natLab({
    sites: [{ name: "home", nat: "forward", hosts: 2, forward: { tcp: [8022], udp: [8023] } }],
    publicHosts: ["peer"],
  });
  const wan = lab.router("home").wanIp;
  const peer = lab.publicHost("peer");
  await using tcp0 = await tcpListener(lab, lab.host("home", 0).ns, "0.0.0.0:8022");
  await using closed = await tcpListener(lab, lab.host("home", 0).ns, "0.0.0.0:8024");
  const ok = await tcpConnect(lab, peer.ns, `${wan}:8022`);
  assert(ok.connected, `the forwarded TCP port answers: ${ok.error}`);
  assert.deepEqual(ok.greeting, `hello from ${lab.host("home", 0).ip}:8022`);
  const accepted = await tcp0.expect((e) => e.event === "accepted", "accepted connection");
  assert.equal(ip(String(accepted.from)), peer.ip, "host 0 sees the peer's own address");
  const no = await tcpConnect(lab, peer.ns, `${wan}:8024`, { timeoutMs: 1000 });
  assert.deepEqual(no.connected, false, "a port that is not forwarded stays closed");
  assert.deepEqual(closed.events.filter((e) => e.event === "accepted").length, 0);

  await using udp0 = await udpProbe(lab, lab.host("home", 0).ns, { bind: "0.0.0.0:8023", echo: true });
  await using sender = await udpProbe(lab, peer.ns);
  await sender.datagram(`${wan}:8023`, "knock");
  assert(await udp0.received("knock"), "the forwarded UDP port reaches host 0");
  assert(
    await sender.received("echo:knock", { from: wan }),
    "and its answer comes back from the router's address",
  );
});

labTest("hosts without NAT are reachable from anywhere", async () => {
  await using lab = await natLab({ sites: [{ name: "open", nat: "none", hosts: 2 }], publicHosts: ["peer"] });
  await using _listener = await tcpListener(lab, lab.host("open", 1).ns, "0.0.0.0:9000");
  const c = await tcpConnect(lab, lab.publicHost("peer").ns, `${lab.host("open", 1).ip}:9000`);
  assert(c.connected, `the host is reachable: ${c.error}`);
});

labTest("a router that blocks UDP answers no STUN but lets TCP out", async () => {
  await using lab = await natLab({
    sites: [{ name: "office", nat: "port-restricted", blockUdp: true }],
    publicHosts: ["web"],
  });
  await using probe = await udpProbe(lab, lab.host("office").ns);
  assert.deepEqual(await probe.stun(lab.stunServers[0], { timeoutMs: 1000 }), undefined);
  await using _web = await tcpListener(lab, lab.publicHost("web").ns, "0.0.0.0:443");
  const c = await tcpConnect(lab, lab.host("office").ns, `${lab.publicHost("web").ip}:443`);
  assert(c.connected, `TCP gets out: ${c.error}`);
});

labTest(
  "every site has the same LAN subnet: dialing another site's LAN address reaches nothing or oneself",
  async () => {
    await using lab = await natLab({
      sites: [{ name: "a", nat: "port-restricted" }, { name: "b", nat: "port-restricted", hosts: 2 }],
      stun: false,
    });
    const a = lab.host("a");
    const b1 = lab.host("b", 1);
    assert.deepEqual(a.ip, lab.host("b", 0).ip, "both sites number their first host alike");
    await using b1Listener = await tcpListener(lab, b1.ns, "0.0.0.0:7300");
    const c = await tcpConnect(lab, a.ns, `${b1.ip}:7300`, { timeoutMs: 1000 });
    assert.deepEqual(c.connected, false, "site a has no host at b's .11");
    assert.deepEqual(b1Listener.events.filter((e) => e.event === "accepted").length, 0);

    await using self = await udpProbe(lab, a.ns, { bind: "0.0.0.0:7301" });
    await self.datagram(`${lab.host("b", 0).ip}:7301`, "to b's first host");
    const got = await self.received("to b's first host");
    assert(got, "the same LAN address is the sender itself");
  },
);

labTest(
  "UDP hole punching with STUN-learned addresses links cone routers, and fails between two symmetric ones",
  async (t) => {
    await using lab = await natLab({
      sites: [
        { name: "fc", nat: "full-cone" },
        { name: "rc", nat: "restricted-cone" },
        { name: "pr1", nat: "port-restricted" },
        { name: "pr2", nat: "port-restricted" },
        { name: "sy1", nat: "symmetric" },
        { name: "sy2", nat: "symmetric" },
      ],
    });
    const pairs: [string, string, boolean][] = [
      ["pr1", "pr2", true],
      ["fc", "pr1", true],
      ["rc", "pr2", true],
      ["fc", "sy1", true], // the full cone admits the symmetric side's new port, and answers it there
      ["pr1", "sy1", false], // the symmetric side's packets come from a port STUN never saw
      ["sy1", "sy2", false],
    ];
    let nextPort = 20000;
    for (const [x, y, works] of pairs) {
      await t.step(`${x} ↔ ${y} ${works ? "links" : "does not link without tricks"}`, async () => {
        const localPort = nextPort++;
        await using px = await udpProbe(lab, lab.host(x).ns, { bind: `0.0.0.0:${localPort}` });
        await using py = await udpProbe(lab, lab.host(y).ns, { bind: `0.0.0.0:${localPort}` });
        const [mx, my] = await Promise.all([px.stun(lab.stunServers[0]), py.stun(lab.stunServers[0])]);
        assert(mx && my, "both learn their public address");
        // Both punch at once, each towards the other's STUN-learned address (bounded: 60 × 50 ms).
        await Promise.all([px.punch(my.mapped, { count: 60 }), py.punch(mx.mapped, { count: 60 })]);
        const [hx, hy] = await Promise.all([px.punched(my.mapped), py.punched(mx.mapped)]);
        assert.deepEqual({ [x]: hx, [y]: hy }, { [x]: works, [y]: works });
      });
    }
  },
);

labTest(
  "NAT-PMP: a mapping made with nat-port-mapper shows in portMappings, lets the internet in, and is gone after unmap",
  async () => {
    await using lab = await natLab({ sites: [{ name: "home", nat: "upnp" }], publicHosts: ["peer"] });
    const home = lab.host("home");
    const router = lab.router("home");
    await using client = portMapper(lab, home.ns, "pmp", home.gateway);
    const external = await client.external();
    assert.deepEqual(external, { ok: true, value: router.wanIp, error: undefined });
    const mapped = await client.map(40000, home.ip, "udp");
    assert(mapped.ok, `NAT-PMP maps the port: ${mapped.error}`);
    const m = mapped.value as { externalHost: string; externalPort: number };
    assert.deepEqual(m.externalHost, router.wanIp);
    // nat-port-mapper 4.0.5 asks NAT-PMP for its ttl in milliseconds where RFC 6886 §3.3 means
    // seconds: the default hour becomes a lease of 41 days, which outlives a crashed client.
    const [lease] = await lab.leases("home");
    assert(
      lease.expiresAt! - Date.now() > 30 * DAY_MS,
      `the NAT-PMP lease ends ${new Date(lease.expiresAt!)}`,
    );
    assert.deepEqual(await lab.portMappings("home"), [
      { protocol: "udp", externalPort: m.externalPort, internalIp: home.ip, internalPort: 40000 },
    ]);

    await using inside = await udpProbe(lab, home.ns, { bind: "0.0.0.0:40000" });
    await using outside = await udpProbe(lab, lab.publicHost("peer").ns);
    await outside.datagram(`${router.wanIp}:${m.externalPort}`, "through the mapping");
    assert(
      await inside.received("through the mapping"),
      "an internet host reaches the mapped port unsolicited",
    );

    const unmapped = await client.unmap(40000, "udp");
    assert(unmapped.ok, `NAT-PMP unmaps: ${unmapped.error}`);
    assert.deepEqual(await lab.portMappings("home"), []);
  },
);

labTest(
  "UPnP-IGD: a mapping made with nat-port-mapper shows in portMappings and lets the internet in; its unmap removes TCP mappings only",
  async () => {
    await using lab = await natLab({
      sites: [{ name: "home", nat: "upnp", hosts: 2 }],
      publicHosts: ["peer"],
    });
    const home = lab.host("home");
    const router = lab.router("home");
    await using client = portMapper(lab, home.ns, "upnp");
    assert.deepEqual((await client.external()).value, router.wanIp);
    const mapped = await client.map(41000, home.ip, "tcp");
    assert(mapped.ok, `UPnP maps the port: ${mapped.error}`);
    assert.deepEqual(await lab.portMappings("home"), [
      { protocol: "tcp", externalPort: 41000, internalIp: home.ip, internalPort: 41000 },
    ]);
    const [lease] = await lab.leases("home");
    assert.equal(lease.description, "natlab");
    const hours = (lease.expiresAt! - Date.now()) / HOUR_MS;
    assert(
      hours > 0.9 && hours < 1.01,
      `UPnP leases the default hour (in seconds, as IGD wants): ${hours} h`,
    );
    await using _listener = await tcpListener(lab, home.ns, "0.0.0.0:41000");
    const c = await tcpConnect(lab, lab.publicHost("peer").ns, `${router.wanIp}:41000`);
    assert(c.connected, `an internet host connects through the mapping: ${c.error}`);

    // Secure mode: a host may map ports only to its own address.
    const other = await client.map(41001, lab.host("home", 1).ip, "tcp");
    assert.equal(other.ok, false, "miniupnpd refuses a mapping to another host");
    assert.equal((await lab.portMappings("home")).length, 1);

    // nat-port-mapper 4.0.5's UPnP unmap sends DeletePortMapping with an empty NewProtocol, which
    // miniupnpd reads as TCP: a UDP mapping stays until its lease ends, and the library reports
    // success. mailmeet must delete UPnP mappings naming the protocol. (If this fails, it got fixed.)
    const udp = await client.map(41002, home.ip, "udp");
    assert(udp.ok, `UPnP maps UDP too: ${udp.error}`);
    assert((await client.unmap(41000, "tcp")).ok);
    assert((await client.unmap(41002, "udp")).ok, "the library reports success for UDP too");
    assert.deepEqual(await lab.portMappings("home"), [
      { protocol: "udp", externalPort: 41002, internalIp: home.ip, internalPort: 41002 },
    ]);
  },
);

labTest(
  "behind carrier-grade NAT the home router's NAT-PMP and UPnP offer no public address and map nothing; STUN sees the ISP's",
  async () => {
    await using lab = await natLab({ sites: [{ name: "flat", nat: "cgnat" }] });
    const home = lab.host("flat");
    // miniupnpd answers NAT-PMP's external address request with "network failure" (result 3) and
    // UPnP's GetExternalIPAddress with an empty address: its WAN, 192.0.2.2, is not public.
    await using pmp = portMapper(lab, home.ns, "pmp", home.gateway);
    const pmpExternal = await pmp.external();
    assert.equal(
      pmpExternal.ok,
      false,
      `NAT-PMP reports no external address: ${JSON.stringify(pmpExternal)}`,
    );
    assert.equal((await pmp.map(42000, home.ip, "udp")).ok, false, "and maps nothing");
    await using upnp = portMapper(lab, home.ns, "upnp");
    assert.deepEqual(await upnp.external(), { ok: true, value: "", error: undefined });
    assert.equal((await upnp.map(42001, home.ip, "udp")).ok, false, "UPnP maps nothing either");
    assert.deepEqual(await lab.portMappings("flat"), []);

    await using probe = await udpProbe(lab, home.ns);
    const seen = await probe.stun(lab.stunServers[0]);
    assert.equal(seen && ip(seen.mapped), lab.isp("flat").publicIp);
    assert.notEqual(lab.router("flat").wanIp, lab.isp("flat").publicIp);
  },
);

labTest(
  "IPv6: a host's global address reaches the internet, and its router drops unsolicited inbound",
  async () => {
    await using lab = await natLab({
      sites: [{ name: "home", nat: "port-restricted", ipv6: true }, {
        name: "v4only",
        nat: "port-restricted",
      }],
      publicHosts: ["peer"],
      stun: false,
    });
    const home = lab.host("home");
    const peer = lab.publicHost("peer");
    assert(
      home.ipv6?.startsWith("2001:db8:") && peer.ipv6?.startsWith("2001:db8:"),
      "both have global addresses",
    );
    assert.equal(lab.host("v4only").ipv6, undefined);

    await using peerListener = await tcpListener(lab, peer.ns, "[::]:443");
    const out = await tcpConnect(lab, home.ns, `[${peer.ipv6}]:443`);
    assert(out.connected, `the host connects out over IPv6: ${out.error}`);
    const accepted = await peerListener.expect((e) => e.event === "accepted", "accepted connection");
    assert.equal(hostOf(String(accepted.from)), home.ipv6, "with its own address: IPv6 is routed, not NATed");

    await using homeListener = await tcpListener(lab, home.ns, "[::]:8443");
    const inbound = await tcpConnect(lab, peer.ns, `[${home.ipv6}]:8443`, { timeoutMs: 1000 });
    assert.equal(inbound.connected, false, "the router's firewall drops an unsolicited connection");
    assert.equal(homeListener.events.filter((e) => e.event === "accepted").length, 0);

    // UDP: once the host has sent to the peer, the peer's answer gets in (a stateful pinhole).
    await using inside = await udpProbe(lab, home.ns, { bind: "[::]:9000" });
    await using outside = await udpProbe(lab, peer.ns, { bind: "[::]:9001", echo: true });
    await inside.datagram(`[${peer.ipv6}]:9001`, "ping6");
    assert(await outside.received("ping6", { from: home.ipv6 }), "the peer hears the host's own address");
    assert(await inside.received("echo:ping6", { from: `[${peer.ipv6}]:9001` }), "the answer comes back");
  },
);

labTest(
  "coturn relays for the lab's TURN user behind a symmetric NAT, and refuses a wrong password",
  async () => {
    await using lab = await natLab({ sites: [{ name: "a", nat: "symmetric" }], turn: true });
    const turn = lab.turn!;
    assert.equal(turn.url, `turn:${turn.user}:${turn.password}@${lab.stunServers[0]}`);
    // coturn's own client: allocations that send to each other through the relay (-y). It paces
    // itself in one-second ticks, so this takes about five seconds whatever the message count.
    const relay = (password: string) =>
      lab.exec(lab.host("a").ns, TURN_CLIENT, [
        ...["-y", "-n", "2", "-m", "1", "-l", "100", "-u", turn.user, "-w", password],
        ...["-r", String(port(turn.server)), ip(turn.server)],
      ], { check: false });
    const ok = await relay(turn.password);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout + ok.stderr, /start_mclient: tot_send_msgs=([1-9]\d*), tot_recv_msgs=\1\n/);
    assert.match(ok.stdout + ok.stderr, /Total lost packets 0 /);
    const refused = await relay("wrong");
    assert.notEqual(refused.code, 0, "a wrong password gets no allocation");
  },
);

labTest("a lab leaves no namespace and no process behind, even when the test body throws", async () => {
  let namespaces: readonly string[] = [];
  let pid = 0;
  const boom = new Error("the test failed");
  try {
    await using lab = await natLab({ sites: [{ name: "a", nat: "symmetric" }], stun: false });
    namespaces = lab.namespaces;
    // A process that would outlive its parent: only the namespace sweep finds it.
    const out = await lab.exec(lab.host("a").ns, "sh", ["-c", "sleep 600 >/dev/null 2>&1 & echo $!"]);
    pid = Number(out.stdout.trim());
    assert(pid > 0);
    throw boom;
  } catch (e) {
    assert(e === boom);
  }
  const left = await listNamespaces();
  assert.deepEqual(namespaces.filter((n) => left.includes(n)), []);
  assert(!isAlive(pid), "the orphaned sleep was killed");
});

labTest("a new lab deletes namespaces left by a process that died", async () => {
  // A namespace named for a pid that no longer runs, with a process inside: a crashed run's leftover.
  const dead = new Deno.Command("true").spawn();
  await dead.status;
  const stale = `mmlab-${dead.pid}-0-h-ghost-0`;
  await run("ip", ["netns", "add", stale]);
  const sleeper = new Deno.Command("ip", {
    args: ["netns", "exec", stale, "sleep", "600"],
    stdout: "null",
    stderr: "null",
  })
    .spawn();
  try {
    await using _lab = await natLab({ sites: [{ name: "a", nat: "none" }], stun: false });
    assert(!(await listNamespaces()).includes(stale), "the stale namespace is gone");
    const status = await sleeper.status;
    assert.deepEqual(status.success, false, "its process was killed");
  } finally {
    try {
      sleeper.kill("SIGKILL");
    } catch {
      // Already killed by the sweep.
    }
    await sleeper.status;
    await run("ip", ["netns", "del", stale], true);
  }
});

async function run(cmd: string, args: string[], allowFailure = false): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success && !allowFailure) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}
