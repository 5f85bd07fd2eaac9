/**
 * The people of an end-to-end test: a command of one person, meeting through a host of the world,
 * run as a piped process with --json events (what a script sees) or on a terminal in human mode
 * (what a person sees). Plus the files a transfer test needs.
 */
import {
  BUNDLE,
  type CliEvent,
  type CliProcess,
  OFFLINE_ENV,
  spawnCli,
} from "../../scripts/lib/cli_process.ts";
import { type Terminal, terminal, type TerminalOptions } from "./terminal.ts";
import type { Account, World } from "./world.ts";

export const is = (event: string, extra: Record<string, unknown> = {}) => (e: CliEvent) =>
  e.event === event && Object.entries(extra).every(([k, v]) => e[k] === v);

/** `COMMAND --address … --user NAME --via HOST --listen 127.0.0.1:0 --timeout 60 …` without --json. */
export function personArgs(
  w: World,
  name: string,
  host: Account | null,
  args: string[],
  acct: Account,
): string[] {
  return [
    args[0],
    ...w.common(acct).filter((a) => a !== "--json"),
    "--user",
    name,
    ...(host ? ["--via", host.address] : []),
    "--listen",
    "127.0.0.1:0",
    "--timeout",
    "60",
    ...args.slice(1),
  ];
}

/** A person's command as a piped process with --json (stdin closed). */
export function piped(
  w: World,
  name: string,
  host: Account | null,
  args: string[],
  acct = w.account(name),
): CliProcess {
  return spawnCli(name, [...personArgs(w, name, host, args, acct), "--json"], w.env);
}

/** A person's command on a terminal, in human mode. */
export function onTerminal(
  w: World,
  name: string,
  host: Account | null,
  args: string[],
  acct = w.account(name),
  opts: TerminalOptions = {},
): Promise<Terminal> {
  return terminal([
    Deno.execPath(),
    "run",
    "-A",
    "--unstable-net",
    BUNDLE,
    ...personArgs(w, name, host, args, acct),
  ], {
    width: 110,
    height: 30,
    ...opts,
    env: { ...OFFLINE_ENV, ...w.env, ...opts.env },
  });
}

/** A file of `mib` MiB of zeros with no disk blocks behind it (fast to make, read as zeros). */
export async function sparseFile(path: string, mib: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  await f.truncate(mib * 1024 * 1024);
}

export async function size(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

/** Waits (polling the file, no clock in the assertion) until `path` holds at least `bytes`. */
export async function grownTo(path: string, bytes: number, timeoutMs = 60_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const n = await size(path);
    if (n >= bytes) return n;
    if (Date.now() > until) throw new Error(`${path} holds ${n} of ${bytes} bytes after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Lines of a terminal screen that look like a progress bar. */
export const barLines = (screen: string) => screen.split("\n").filter((l) => /^\[[#.]+\]\s+\d+%/.test(l));
