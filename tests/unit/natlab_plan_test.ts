// The NAT lab's pure parts, checked without root: the address plan, the rulesets, the daemon
// configs, the STUN codec the probe speaks and the reading of miniupnpd's nftables chain.
import assert from "node:assert/strict";
import fc from "fast-check";
import { coturnConfig, miniupnpdConfig, procSocketAddress } from "../helpers/natlab/daemons.ts";
import { LabError } from "../helpers/natlab/errors.ts";
import { parseLeaseFile, parseUpnpChain } from "../helpers/natlab/upnp.ts";
import { routerRuleset } from "../helpers/natlab/nft.ts";
import { type LabPlan, planLab, plannedAddresses } from "../helpers/natlab/plan.ts";
import { type LabSpec, NAT_KINDS, type NatKind, validateSpec } from "../helpers/natlab/spec.ts";
import { bindingRequest, isStun, MAGIC_COOKIE, parseBindingAnswer } from "../helpers/natlab/stun.ts";

const ID = "mmlab-4242-0";
const IFNAMSIZ = 15;

/** The documentation ranges the lab may use (RFC 5737, RFC 3849). */
function inLabRange(addr: string): boolean {
  if (addr.includes(":")) return addr.toLowerCase().startsWith("2001:db8:");
  return ["203.0.113.", "198.51.100.", "192.0.2."].some((p) => addr.startsWith(p));
}

/** Interface names a plan creates or configures. */
function interfaceNames(plan: LabPlan): string[] {
  const names: string[] = [];
  for (const line of plan.links) {
    const m = /^link add (\S+)(?:.*peer name (\S+))?/.exec(line);
    if (m) names.push(m[1], ...(m[2] ? [m[2]] : []));
  }
  for (const ns of plan.namespaces) {
    for (const line of ns.ip) {
      const m = /dev (\S+)/.exec(line);
      if (m) names.push(m[1]);
    }
  }
  return names;
}

const everyKind: LabSpec = {
  sites: NAT_KINDS.map((nat, i) => ({ name: `s${i}`, nat, hosts: 2 })),
  publicHosts: ["web", "relay"],
  turn: true,
};

Deno.test("the lab plan uses only documentation addresses and interface names the kernel accepts", () => {
  const plan = planLab(everyKind, ID);
  const addrs = plannedAddresses(plan);
  assert.ok(addrs.length > 20);
  assert.deepEqual(addrs.filter((a) => !inLabRange(a)), []);
  assert.deepEqual(interfaceNames(plan).filter((n) => n.length > IFNAMSIZ), []);
  assert.deepEqual(plan.namespaces.filter((n) => !n.name.startsWith(`${ID}-`)), []);
});

Deno.test("every site numbers its LAN alike, and internet addresses are unique", () => {
  const plan = planLab(everyKind, ID);
  const routed = [...plan.sites.values()].filter((s) => s.router);
  for (const s of routed) {
    assert.equal(s.router!.lanIp, "198.51.100.1");
    assert.deepEqual(s.hosts.map((h) => h.ip), ["198.51.100.10", "198.51.100.11"]);
  }
  const internet = [
    ...plan.stun!.ips,
    ...[...plan.publicHosts.values()].map((h) => h.ip),
    ...[...plan.sites.values()].map((s) => s.router?.publicIp ?? s.hosts.map((h) => h.ip)).flat(),
  ];
  assert.ok(internet.every((a) => a.startsWith("203.0.113.")));
  assert.equal(new Set(internet).size, internet.length);
});

Deno.test("a cgnat site's home router has a private WAN behind the ISP's public address", () => {
  const plan = planLab({ sites: [{ name: "flat", nat: "cgnat" }] }, ID);
  const site = plan.sites.get("flat")!;
  assert.equal(site.router!.wanIp, "192.0.2.2");
  assert.equal(site.router!.publicIp, site.isp!.wanIp);
  assert.ok(site.isp!.wanIp.startsWith("203.0.113."));
  assert.ok(site.upnp, "miniupnpd runs on the home router, to show it has no public address");
});

Deno.test("random lab specs plan valid, unique namespaces inside the documentation ranges", () => {
  const site = fc.record({
    nat: fc.constantFrom<NatKind>(...NAT_KINDS),
    hosts: fc.integer({ min: 1, max: 4 }),
    ipv6: fc.boolean(),
    blockUdp: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.array(site, { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 0, max: 5 }),
      (sites, pub) => {
        const spec: LabSpec = {
          sites: sites.map((s, i) => ({ ...s, name: `site${i}`, ipv6: s.ipv6 && s.nat !== "cgnat" })),
          publicHosts: Array.from({ length: pub }, (_, j) => `pub${j}`),
        };
        const plan = planLab(spec, ID);
        assert.deepEqual(plannedAddresses(plan).filter((a) => !inLabRange(a)), []);
        assert.deepEqual(interfaceNames(plan).filter((n) => n.length > IFNAMSIZ), []);
        const names = plan.namespaces.map((n) => n.name);
        assert.equal(new Set(names).size, names.length);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("natLab refuses specs it cannot build with a LabError naming the problem", () => {
  const bad: [LabSpec, RegExp][] = [
    [{ sites: [{ name: "Home", nat: "full-cone" }] }, /lower-case/],
    [{ sites: [{ name: "a", nat: "none" }, { name: "a", nat: "symmetric" }] }, /used twice/],
    [{ sites: [{ name: "a", nat: "none", forward: { tcp: [22] } }] }, /no router/],
    [{ sites: [{ name: "a", nat: "forward", forward: { udp: [70000] } }] }, /invalid port/],
    [{ sites: [{ name: "a", nat: "cgnat", ipv6: true }] }, /IPv6/],
    [{ sites: [{ name: "a", nat: "symmetric", hosts: 0 }] }, /hosts/],
    [{ sites: [], stun: false, turn: true }, /TURN/],
  ];
  for (const [spec, message] of bad) {
    assert.throws(
      () => validateSpec(spec),
      (e: unknown) => e instanceof LabError && e.code === "bad-spec" && message.test(e.message),
    );
  }
});

Deno.test("router rulesets: symmetric randomises ports, cones keep a mapping table, all drop unsolicited input", () => {
  const base = { wan: "wan", lan: "lan0", host0: "198.51.100.10" };
  const sym = routerRuleset({ ...base, kind: "symmetric" });
  const pr = routerRuleset({ ...base, kind: "port-restricted" });
  const full = routerRuleset({ ...base, kind: "full-cone" });
  const rc = routerRuleset({ ...base, kind: "restricted-cone" });
  assert.match(sym, /masquerade fully-random/);
  assert.doesNotMatch(pr, /random/);
  assert.match(full, /dnat ip to meta l4proto \. th dport map @cone/);
  assert.doesNotMatch(full, /@contacted/);
  assert.match(rc, /ip saddr \. th dport @contacted dnat/);
  for (const rules of [sym, pr, full, rc]) {
    assert.match(rules, /policy drop;/);
    assert.match(rules, /iifname "wan" drop/);
    assert.match(rules, /meta nfproto ipv4 oifname "wan" masquerade/, "IPv6 is routed, never NATed");
  }
  const blocked = routerRuleset({ ...base, kind: "port-restricted", blockUdp: true });
  assert.ok(
    blocked.indexOf("meta l4proto udp drop") < blocked.indexOf("ct state established,related accept"),
  );
  const fwd = routerRuleset({ ...base, kind: "port-restricted", forward: { tcp: [22, 80], udp: [53] } });
  assert.match(fwd, /tcp dport \{ 22, 80 \} dnat ip to 198\.51\.100\.10/);
  const upnp = routerRuleset({ ...base, kind: "port-restricted", upnp: true });
  for (const chain of ["miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"]) {
    assert.match(upnp, new RegExp(`jump ${chain}\\b`));
  }
});

Deno.test("coturn answers RFC 5780 on two addresses, relays only when asked and only to lab addresses", () => {
  const stun = coturnConfig({ ips: ["203.0.113.2", "203.0.113.3"], port: 3478, turn: false, dir: "/tmp/x" });
  assert.match(stun, /^listening-ip=203\.0\.113\.2$/m);
  assert.match(stun, /^listening-ip=203\.0\.113\.3$/m);
  assert.match(stun, /^stun-only$/m);
  assert.doesNotMatch(stun, /no-rfc5780/);
  const turn = coturnConfig({ ips: ["203.0.113.2", "203.0.113.3"], port: 3478, turn: true, dir: "/tmp/x" });
  assert.doesNotMatch(turn, /stun-only/);
  assert.match(turn, /^allowed-peer-ip=203\.0\.113\.0-203\.0\.113\.255$/m);
  assert.match(turn, /^denied-peer-ip=0\.0\.0\.0-255\.255\.255\.255$/m);
});

Deno.test("miniupnpd runs in secure mode on the lab table, learning its address by STUN only when told", () => {
  const opts = { wanIf: "wan", lanIf: "lan0", lanNet: "198.51.100.0/24", uuid: "u", leaseFile: "/tmp/l" };
  const withStun = miniupnpdConfig({ ...opts, stun: { host: "203.0.113.2", port: 3478 } });
  assert.match(withStun, /^secure_mode=yes$/m);
  assert.match(withStun, /^upnp_table_name=natlab$/m);
  assert.match(withStun, /^ext_stun_host=203\.0\.113\.2$/m);
  assert.match(withStun, /^allow 1024-65535 198\.51\.100\.0\/24 1024-65535$/m);
  assert.doesNotMatch(miniupnpdConfig(opts), /stun/);
});

Deno.test("/proc/net socket addresses are little-endian hex with a hex port", () => {
  assert.equal(procSocketAddress("203.0.113.2", 3478), "027100CB:0D96");
  assert.equal(procSocketAddress("198.51.100.1", 5351), "016433C6:14E7");
});

Deno.test("STUN: a Binding request carries RFC 5780's CHANGE-REQUEST flags", () => {
  const id = new Uint8Array(12).fill(7);
  const plain = bindingRequest(id);
  assert.equal(plain.length, 20);
  assert.ok(isStun(plain));
  const both = bindingRequest(id, { ip: true, port: true });
  assert.deepEqual([...both.subarray(20)], [0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0x06]);
  assert.equal(bindingRequest(id, { port: true })[27], 0x02);
  assert.throws(() => bindingRequest(new Uint8Array(3)), RangeError);
});

Deno.test("STUN: a Binding answer yields the mapped, origin and other addresses", () => {
  const id = crypto.getRandomValues(new Uint8Array(12));
  const attr = (type: number, ip: number[], port: number, xor: boolean) => {
    const b = new Uint8Array(12);
    const v = new DataView(b.buffer);
    v.setUint16(0, type);
    v.setUint16(2, 8);
    v.setUint8(5, 1);
    v.setUint16(6, xor ? port ^ (MAGIC_COOKIE >>> 16) : port);
    const cookie = [0x21, 0x12, 0xa4, 0x42];
    ip.forEach((o, i) => v.setUint8(8 + i, xor ? o ^ cookie[i] : o));
    return b;
  };
  const attrs = [
    attr(0x0001, [10, 0, 0, 1], 1, false), // MAPPED-ADDRESS, overridden by the XOR form
    attr(0x0020, [203, 0, 113, 100], 40000, true),
    attr(0x802b, [203, 0, 113, 2], 3478, false),
    attr(0x802c, [203, 0, 113, 3], 3479, false),
  ];
  const body = new Uint8Array(attrs.reduce((n, a) => n + a.length, 0));
  attrs.reduce((at, a) => (body.set(a, at), at + a.length), 0);
  const msg = new Uint8Array(20 + body.length);
  const v = new DataView(msg.buffer);
  v.setUint16(0, 0x0101);
  v.setUint16(2, body.length);
  v.setUint32(4, MAGIC_COOKIE);
  msg.set(id, 8);
  msg.set(body, 20);
  const answer = parseBindingAnswer(msg)!;
  assert.deepEqual(answer.transactionId, id);
  assert.equal(answer.mapped, "203.0.113.100:40000");
  assert.equal(answer.responseOrigin, "203.0.113.2:3478");
  assert.equal(answer.otherAddress, "203.0.113.3:3479");
  assert.equal(parseBindingAnswer(new TextEncoder().encode("not stun, just a datagram")), undefined);
});

Deno.test("miniupnpd's DNAT rules read back as port mappings", () => {
  const rule = (proto: number, port: number, addr: string, remote?: number) => ({
    rule: {
      family: "inet",
      table: "natlab",
      chain: "prerouting_miniupnpd",
      expr: [
        { match: { op: "==", left: { meta: { key: "iif" } }, right: "wan" } },
        ...(remote === undefined
          ? []
          : [{ match: { op: "==", left: { payload: { base: "nh", offset: 96, len: 32 } }, right: remote } }]),
        { match: { op: "==", left: { payload: { base: "nh", offset: 72, len: 8 } }, right: proto } },
        { match: { op: "==", left: { payload: { protocol: "th", field: "dport" } }, right: port } },
        { dnat: { family: "ip", addr, port } },
      ],
    },
  });
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6" } },
      { chain: { family: "inet", table: "natlab", name: "prerouting_miniupnpd" } },
      rule(17, 40000, "198.51.100.10"),
      rule(6, 41000, "198.51.100.11", 0xcb007114),
    ],
  });
  assert.deepEqual(parseUpnpChain(json), [
    { protocol: "udp", externalPort: 40000, internalIp: "198.51.100.10", internalPort: 40000 },
    {
      protocol: "tcp",
      externalPort: 41000,
      internalIp: "198.51.100.11",
      internalPort: 41000,
      remoteHost: "203.0.113.20",
    },
  ]);
});

Deno.test("miniupnpd's lease file reads back with each mapping's end and description", () => {
  const text = "UDP:40000:198.51.100.10:40000:1799352039:NAT-PMP 40000 udp\n" +
    "TCP:41000:198.51.100.10:41000:0:a: description: with colons\n\n";
  assert.deepEqual(parseLeaseFile(text), [
    {
      protocol: "udp",
      externalPort: 40000,
      internalIp: "198.51.100.10",
      internalPort: 40000,
      expiresAt: 1799352039000,
      description: "NAT-PMP 40000 udp",
    },
    {
      protocol: "tcp",
      externalPort: 41000,
      internalIp: "198.51.100.10",
      internalPort: 41000,
      description: "a: description: with colons",
    },
  ]);
});
