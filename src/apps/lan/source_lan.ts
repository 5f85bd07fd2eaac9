/**
 * Source-engine discovery across the group (format: ./a2s.ts). On the member that runs the
 * server, a prober asks it for A2S_INFO now and then, and the tunnel tells the group the answer;
 * on the others, the UDP tunnel answers an A2S_INFO query at once with that answer, its game port
 * rewritten to the tunnel's local port — the LAN browser lists the server with the right port, and
 * the game then plays through the tunnel.
 */
import { createSocket } from "node:dgram";
import type { Buffer } from "node:buffer";
import { challengeOf, infoQuery, isInfoQuery, parseInfo, withGamePort } from "./a2s.ts";

/** How often the server is asked (players come and go). */
export const A2S_PROBE_MS = 5_000;

/** Asks 127.0.0.1:port for A2S_INFO every A2S_PROBE_MS; `onInfo` gets each answer, raw. */
export function probeSource(port: number, onInfo: (answer: Uint8Array) => void): Disposable {
  const socket = createSocket("udp4");
  socket.on("error", () => {});
  socket.on("message", (msg: Buffer) => {
    const b = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    const challenge = challengeOf(b);
    if (challenge !== undefined) return void socket.send(infoQuery(challenge), port, "127.0.0.1");
    if (parseInfo(b)) onInfo(b.slice());
  });
  const ask = () => socket.send(infoQuery(), port, "127.0.0.1");
  socket.bind(0, "127.0.0.1", ask);
  const timer = setInterval(ask, A2S_PROBE_MS);
  return {
    [Symbol.dispose]: () => {
      clearInterval(timer);
      socket.close();
    },
  };
}

/**
 * The local side's answer to a datagram from a game: the member's A2S_INFO answer (rewritten to
 * `localPort`) when the datagram is an A2S_INFO query and an answer is known; else undefined and
 * the datagram goes through the tunnel as any other.
 */
export function answerInfoQuery(
  datagram: Uint8Array,
  known: Uint8Array | undefined,
  localPort: number,
): Uint8Array | undefined {
  if (!known || !isInfoQuery(datagram)) return undefined;
  return withGamePort(known, localPort);
}
