/** Matching CLI events and making sealed requests, shared by the end-to-end tests. */
import type { CliEvent } from "../../scripts/lib/cli_process.ts";
import { reachAt, type Request } from "../../src/protocol/messages.ts";
import { generateKeyPair } from "../../src/protocol/noise.ts";

/** An event of this kind whose fields include `extra`. */
export const is = (event: string, extra: Record<string, unknown> = {}) => (e: CliEvent) =>
  e.event === event && Object.entries(extra).every(([k, v]) => e[k] === v);

/** An info event whose message matches. */
export const info = (pattern: RegExp) => (e: CliEvent) =>
  e.event === "info" && pattern.test(String(e.message));

/** A well-formed request as a peer would seal it, for tests that mail hosts directly. */
export function request(user: string, replyTo: { address: string }, time = Date.now()): Request {
  const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  const port = 40000 + Math.floor(Math.random() * 20000);
  return {
    kind: "request",
    user,
    host: "127.0.0.1",
    port,
    ...reachAt("127.0.0.1", port),
    quiet: false,
    probe: false,
    session: rnd(16),
    linkKey: generateKeyPair().publicKey,
    time,
    nonce: rnd(16),
    replyTo: replyTo.address,
  };
}
