/** Whether this machine can run the lab, and the unpacked daemons it needs. */
import { MINIUPNPD, TURN_CLIENT, TURNSERVER } from "./daemons.ts";
import { LabError } from "./errors.ts";

const TOOLS_SCRIPT = new URL("../../../scripts/natlab/tools.sh", import.meta.url).pathname;

async function hasCommand(name: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    try {
      const st = await Deno.stat(`${dir}/${name}`);
      if (st.isFile && st.mode !== null && (st.mode & 0o111) !== 0) return true;
    } catch {
      // Not in this folder.
    }
  }
  return false;
}

let skipReason: Promise<string | undefined> | undefined;

/**
 * Why the lab cannot run here (not root, no `ip` or `nft`), or undefined when it can. Lab tests
 * skip with this message; everything else about the lab failing is a test failure.
 */
export function labSkipReason(): Promise<string | undefined> {
  skipReason ??= (async () => {
    if (Deno.build.os !== "linux") return "the NAT lab needs Linux network namespaces";
    if (Deno.uid() !== 0) return "the NAT lab needs root (network namespaces); run the tests as root";
    for (const tool of ["ip", "nft"]) {
      if (!(await hasCommand(tool))) {
        return `the NAT lab needs \`${tool}\`; run scripts/natlab/tools.sh (as root) to install it`;
      }
    }
    return undefined;
  })();
  return skipReason;
}

async function executable(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

let ensuring: Promise<void> | undefined;

/** Makes sure coturn and miniupnpd are unpacked, running scripts/natlab/tools.sh if they are not. */
export function ensureTools(): Promise<void> {
  ensuring ??= (async () => {
    const all = async () =>
      (await Promise.all([TURNSERVER, MINIUPNPD, TURN_CLIENT].map(executable))).every(Boolean);
    if (await all()) return;
    const out = await new Deno.Command("bash", { args: [TOOLS_SCRIPT], stdout: "piped", stderr: "piped" })
      .output();
    if (!out.success || !(await all())) {
      throw new LabError(
        "Cannot unpack coturn and miniupnpd with scripts/natlab/tools.sh.",
        "tools-missing",
        {
          output: new TextDecoder().decode(out.stderr).slice(-3000),
        },
      );
    }
  })();
  ensuring.catch(() => (ensuring = undefined));
  return ensuring;
}
