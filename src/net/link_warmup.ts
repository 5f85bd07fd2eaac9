/**
 * A process's first link handshake runs cold: node:crypto sets up X25519, HKDF and AES-GCM on
 * their first calls, V8 has not compiled the Noise code yet, and the native frame cipher loads
 * libcrypto (Deno.dlopen and OpenSSL's own set-up). Measured here, one handshake on throwaway keys
 * (both sides in one process) takes 10–15 ms cold and 1.5–2 ms warm, and loading libcrypto 8–10 ms.
 * A member that waits for newcomers pays that cold start on the newcomer's path to its link.
 *
 * warmLinkCrypto() does the same work once on throwaway keys, for a node that has nothing else to
 * do. Each step is its own task, so a dial or a mail that comes meanwhile waits for one step at
 * most (the longest, loading libcrypto, 8–10 ms), never for the whole of it.
 */
import { deriveLinkPsk, generateKeyPair, HandshakeState, LINK_PROLOGUE } from "../protocol/noise.ts";
import { concat, utf8 } from "../protocol/bytes.ts";
import { createFrameCipher, nativeFrameCipherAvailable } from "./frame_cipher.ts";

let warming: Promise<void> | undefined;

const nextTask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Once per process; later calls return the first one's promise. Never rejects. */
export function warmLinkCrypto(): Promise<void> {
  warming ??= run().catch(() => {
    // Only a warm-up: whatever failed here fails again, with its real message, in a real handshake.
  });
  return warming;
}

async function run(): Promise<void> {
  await nextTask();
  nativeFrameCipherAvailable();
  await nextTask();
  const dialer = generateKeyPair();
  const listener = generateKeyPair();
  const psk = deriveLinkPsk(new Uint8Array(32));
  await nextTask();
  const initiator = HandshakeState.initiator({
    s: dialer,
    rs: listener.publicKey,
    psk,
    prologue: LINK_PROLOGUE,
  });
  const hello = initiator.writeMessage(utf8('{"user":"warm-up","v":1}'));
  await nextTask();
  const responder = HandshakeState.responder({ s: listener, psk, prologue: LINK_PROLOGUE });
  responder.readMessage(hello);
  const answer = responder.writeMessage(utf8('{"user":"warm-up","v":1}'));
  await nextTask();
  initiator.readMessage(answer);
  const { sendKey } = initiator.splitKeys();
  await nextTask();
  // One frame each way through the backend links will use, sealed and opened under the same key.
  const cipher = createFrameCipher({ sendKey, receiveKey: sendKey, headroom: 4, maxPlaintext: 64 });
  const sealed = await cipher.seal([utf8("warm-up")]);
  await cipher.open(concat(...sealed).subarray(4));
}
