import assert from "node:assert/strict";
import { parseBind, parseExpose, parseLocal } from "../../src/cli/tunnel_spec.ts";
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
