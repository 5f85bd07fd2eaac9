/**
 * The lab's few system calls: `ip`, `ip netns exec`, the namespace list, and the sweep of
 * namespaces that a dead process left behind. Nothing here touches the root namespace's links,
 * addresses, routes or firewall: `ip netns add/del` only create and remove namespaces.
 */
import { LabError } from "./errors.ts";
import { NS_PREFIX } from "./plan.ts";

const NETNS_DIR = "/run/netns";
const decoder = new TextDecoder();

export interface RunResult {
  code: number;
  success: boolean;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: string;
  env?: Record<string, string>;
  /** Throw a LabError("command-failed") on a non-zero exit (default true). */
  check?: boolean;
}

export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  let out: Deno.CommandOutput;
  try {
    const child = new Deno.Command(cmd, {
      args,
      env: opts.env,
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin));
      await w.close();
    }
    out = await child.output();
  } catch (e) {
    throw new LabError(`Cannot run "${cmd}": ${e instanceof Error ? e.message : e}.`, "command-failed", {
      command: [cmd, ...args].join(" "),
      cause: e,
    });
  }
  const result = {
    code: out.code,
    success: out.success,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if (!result.success && opts.check !== false) {
    const line = [cmd, ...args].join(" ");
    throw new LabError(`"${line.slice(0, 200)}" exited with ${out.code}.`, "command-failed", {
      command: line,
      output: (result.stderr + result.stdout).slice(0, 4000),
    });
  }
  return result;
}

/** `ip -batch -` (in the root namespace, or with `-n ns` inside one): one process for many lines. */
export function ipBatch(lines: string[], ns?: string): Promise<RunResult> {
  return run("ip", [...(ns ? ["-n", ns] : []), "-batch", "-"], { stdin: lines.join("\n") + "\n" });
}

export function netnsExec(
  ns: string,
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return run("ip", ["netns", "exec", ns, cmd, ...args], opts);
}

/** Names under /run/netns (the namespaces `ip netns` knows). */
export async function listNamespaces(): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(NETNS_DIR))).map((e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

export function listNamespacesSync(): string[] {
  try {
    return [...Deno.readDirSync(NETNS_DIR)].map((e) => e.name);
  } catch {
    return [];
  }
}

/** The pid that created a lab namespace, from its name `mmlab-<pid>-…`. */
export function ownerPid(ns: string): number | undefined {
  const m = new RegExp(`^${NS_PREFIX}-(\\d+)-`).exec(ns);
  return m ? Number(m[1]) : undefined;
}

/** True while `pid` runs (a zombie, dead but not yet reaped, counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Pids of every process whose network namespace is `ns` (`ip netns pids`). */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await run("ip", ["netns", "pids", ns], { check: false });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

function kill(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/**
 * Kills every process in the namespaces, then deletes them. `ip netns del` only drops the name:
 * a namespace with a process left in it would live on, invisible, holding its addresses.
 */
export async function destroyNamespaces(names: string[]): Promise<void> {
  if (!names.length) return;
  const pids = (await Promise.all(names.map(namespacePids))).flat();
  pids.forEach(kill);
  await run("ip", ["-force", "-batch", "-"], {
    stdin: names.map((n) => `netns del ${n}`).join("\n") + "\n",
    check: false,
  });
  const left = (await listNamespaces()).filter((n) => names.includes(n));
  if (left.length) {
    throw new LabError(`Cannot delete the lab namespaces ${left.join(", ")}.`, "teardown-failed");
  }
}

/** The same, synchronously, for signal handlers and `unload`, where nothing may be awaited. */
export function destroyNamespacesSync(names: string[], pids: number[]): void {
  pids.forEach(kill);
  for (const ns of names) {
    const out = new Deno.Command("ip", { args: ["netns", "pids", ns], stdout: "piped", stderr: "null" })
      .outputSync();
    decoder.decode(out.stdout).split(/\s+/).filter(Boolean).map(Number).forEach(kill);
  }
  for (const ns of names) {
    new Deno.Command("ip", { args: ["netns", "del", ns], stdout: "null", stderr: "null" }).outputSync();
  }
}

/** Lab namespaces whose creating process is gone: a crashed or killed run left them. */
export async function staleNamespaces(): Promise<string[]> {
  return (await listNamespaces()).filter((ns) => {
    const pid = ownerPid(ns);
    return pid !== undefined && pid !== Deno.pid && !isAlive(pid);
  });
}

/** Deletes stale lab namespaces and lab folders (`/tmp/mmlab-<pid>-…`) of dead processes. */
export async function sweepStale(tmp: string): Promise<string[]> {
  const stale = await staleNamespaces();
  await destroyNamespaces(stale);
  try {
    for await (const e of Deno.readDir(tmp)) {
      const pid = ownerPid(e.name);
      if (e.isDirectory && pid !== undefined && pid !== Deno.pid && !isAlive(pid)) {
        await Deno.remove(`${tmp}/${e.name}`, { recursive: true }).catch(() => {});
      }
    }
  } catch {
    // No temp folder to sweep.
  }
  return stale;
}
