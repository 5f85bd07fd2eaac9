/**
 * Hands memory that was freed back to the system (glibc's `malloc_trim`, over FFI).
 *
 * Why: when Deno's module cache misses (a new bundle, or a cache another process holds locked), it
 * parses the 1.4 MB bundle in a worker thread; glibc keeps the ~24 MB that parse freed in that
 * thread's arena, so a node's RSS stays 24 MB higher for its whole life. `malloc_trim(0)` returns
 * the free pages of every arena. Elsewhere (macOS, Windows, musl) or without --allow-ffi it does
 * nothing.
 */
export function releaseFreedMemory(): boolean {
  if (Deno.build.os !== "linux") return false;
  let lib: Deno.DynamicLibrary<{ malloc_trim: { parameters: ["usize"]; result: "i32" } }> | undefined;
  try {
    // Asked first: a missing permission must not become a prompt.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return false;
    lib = Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } });
    return lib.symbols.malloc_trim(0n) === 1;
  } catch {
    return false; // no FFI permission, or no glibc
  } finally {
    lib?.close();
  }
}
