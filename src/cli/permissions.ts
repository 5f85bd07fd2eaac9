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
 * `--v8-flags=--heap-growing-percent=25` is not a permission either: it tells V8 to collect its old
 * generation once it has grown 25% past what the last full collection kept, instead of letting it
 * grow up to 4× first (V8's choice for a process as busy as a host answering a full mailbox). A
 * maildir host answering 10,000 queued requests keeps about 27 MB alive throughout, yet its RSS
 * grew 45–47% from the 1,000th reply to the last, with one full collection in 36 s; with the flag
 * it grew 6–7% and answered 381/s against 408/s without (medians of 3 interleaved runs, issue 12).
 */
export const DENO_PERMISSIONS: readonly string[] = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--allow-ffi",
  "--v8-flags=--heap-growing-percent=25",
];
