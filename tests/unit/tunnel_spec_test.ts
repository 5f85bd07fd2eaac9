import assert from "node:assert/strict";
import { parseBind, parseExpose, parseLanChannels, parseLocal } from "../../src/cli/tunnel_spec.ts";
import { UsageError } from "../../src/cli/errors.ts";

Deno.test("--local takes PORT, LOCAL:REMOTE and /udp, repeated or comma-separated", () => {
  assert.deepEqual(parseLocal(["25565", "25566:25565,27015/udp"], false), [
    { local: 25565, remote: 25565, udp: false },
    { local: 25566, remote: 25565, udp: false },
    { local: 27015, remote: 27015, udp: true },
  ]);
  assert.deepEqual(parseLocal(["0"], true), [{ local: 0, udp: true }]);
  assert.deepEqual(parseLocal(["0:80/tcp"], true), [{ local: 0, remote: 80, udp: false }]);
});

Deno.test("--expose takes ports with an optional /udp; bad ports are one usage sentence", () => {
  assert.deepEqual(parseExpose(["25565,27015/UDP"], false), [
    { port: 25565, udp: false },
    { port: 27015, udp: true },
  ]);
  assert.throws(() => parseExpose(["0"], false), UsageError);
  assert.throws(() => parseLocal(["1.2.3.4:80:80"], false), /--bind/);
  assert.throws(() => parseLocal(["70000"], false), /not a port number/);
});

Deno.test("--bind takes an IP address, not a name", () => {
  assert.equal(parseBind("0.0.0.0"), "0.0.0.0");
  assert.equal(parseBind("[::]"), "::");
  assert.equal(parseBind(undefined), undefined);
  assert.throws(() => parseBind("lan"), UsageError);
});

Deno.test("--broadcast takes ports, --multicast GROUP:PORT with an IPv4 multicast group", () => {
  assert.deepEqual(parseLanChannels(["34197,6112"], ["239.255.42.99:1900"]), [
    { port: 34197 },
    { port: 6112 },
    { group: "239.255.42.99", port: 1900 },
  ]);
  assert.throws(() => parseLanChannels([], ["192.0.2.1:1900"]), /multicast group/);
  assert.throws(() => parseLanChannels([], ["224.0.2.60"]), /GROUP:PORT/);
  assert.throws(() => parseLanChannels(["0"], []), /not a port number/);
});
