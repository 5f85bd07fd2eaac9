/**
 * The Deno permissions mailmeet asks for, instead of -A: the network (mail servers, the listener,
 * dialing peers), reading and writing files (config, network key, CA certificate, maildir spool,
 * host table, status files — paths the user chooses, so not narrowed to one folder), the
 * environment (HOME, XDG_*, MAILMEET_*, NO_COLOR) and system information (network interfaces for
 * the address to advertise, the host name for SMTP and maildir file names, the user id that owns a
 * spool). deno.json's tasks, the README and the newcomer test use this same list.
 *
 * `--unstable-net` is not a permission but is needed too: QUIC (Deno.QuicEndpoint), which carries
 * links punched through home routers, is still an unstable API in Deno. Without it mailmeet still
 * links over TCP and through relays.
 *
 * `--allow-ffi` gives the link the system's libcrypto (the native frame cipher, src/net/frame_cipher.ts): measured here, a 1 GiB
 * transfer runs about twice as fast and a tunnel's small round trips a third quicker than with
 * WebCrypto, which pays 30–60 µs per call (issue 12). It is granted by default because what it adds
 * to the grant is small for this program: mailmeet already reads and writes wherever the user
 * points it and talks to the network, and the library loaded is the system's own OpenSSL, by
 * name, never a path from input. Where libcrypto is missing (most Windows and macOS machines
 * without OpenSSL 3) the link falls back to the portable cipher (node:crypto and WebCrypto) silently;
 * MAILMEET_NATIVE_CRYPTO=0 forces it.
 *
 * `--v8-flags=--heap-growing-percent=25,--max-semi-space-size=8` is not a permission either. It
 * sizes V8's heap for a long-running process that allocates fast, like a host answering a full
 * mailbox (issue 12):
 * - the old generation is collected once it has grown 25% past what the last full collection
 *   kept, instead of up to 4× (V8's choice while the process is busy);
 * - the young generation stops at 8 MB semi-spaces instead of doubling up to 32 MB.
 * A maildir host answering 10,000 queued requests keeps 18–27 MB alive throughout. Without the
 * flags its RSS grew 45–47% from the 1,000th reply to the last (about 150 → 235 MiB), with one
 * full collection in 36 s; with them it stays at 99–109 MiB (+8–10%) at the same rate.
 */
export const DENO_PERMISSIONS: readonly string[] = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--allow-ffi",
  "--v8-flags=--heap-growing-percent=25,--max-semi-space-size=8",
];
