/** Ctrl-C / SIGTERM end long-running commands cleanly (links closed, mailbox logged out). */

export function interruptSignal(): { signal: AbortSignal; [Symbol.dispose](): void } {
  const ctl = new AbortController();
  const stop = () => ctl.abort(new Error("interrupted"));
  const sigs: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const s of sigs) Deno.addSignalListener(s, stop);
  return {
    signal: ctl.signal,
    [Symbol.dispose]() {
      for (const s of sigs) Deno.removeSignalListener(s, stop);
    },
  };
}
