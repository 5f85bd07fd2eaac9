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
 * --allow-ffi is optional: with it the direct link seals frames with the system's libcrypto,
 * which is faster for tunnels and large files (src/net/aead.ts); without it WebCrypto does.
 */
export const DENO_PERMISSIONS: readonly string[] = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
];
