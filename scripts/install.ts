/**
 * `deno task install`: puts a `mailmeet` command on the PATH that keeps working when the checkout
 * moves or goes. The bundle (dist/mailmeet.js, one self-contained file) is copied under the install
 * root, and `deno install` points the command at that copy, with exactly the permissions mailmeet
 * needs and no config file (so Deno does not warn that it ignores the checkout's deno.json).
 *
 *   deno run --allow-read --allow-write --allow-env --allow-run scripts/install.ts [--root DIR] [--bundle FILE]
 *
 * --root defaults to $DENO_INSTALL_ROOT, else ~/.deno (where `deno install --global` puts commands);
 * the command goes to ROOT/bin/mailmeet and the copy to ROOT/lib/mailmeet/mailmeet.js.
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { DENO_PERMISSIONS } from "../src/cli/permissions.ts";

/** What mailmeet needs, not -A: the same list as deno.json's tasks and the README. */
const PERMISSIONS = DENO_PERMISSIONS;

function fail(message: string): never {
  console.error(`install: ${message}`);
  Deno.exit(1);
}

const { values } = parseArgs({
  args: Deno.args,
  options: { root: { type: "string" }, bundle: { type: "string" } },
  strict: true,
});
const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
const root = values.root ?? Deno.env.get("DENO_INSTALL_ROOT") ?? (home ? join(home, ".deno") : undefined);
if (!root) fail("Cannot tell where to install (no HOME): pass --root DIR.");
const bundle = values.bundle ?? new URL("../dist/mailmeet.js", import.meta.url).pathname;
try {
  await Deno.stat(bundle);
} catch {
  fail(`There is no bundle at ${bundle}; run \`deno task bundle\` first (\`deno task install\` does).`);
}

const copy = join(root, "lib", "mailmeet", "mailmeet.js");
await Deno.mkdir(dirname(copy), { recursive: true });
// Written beside, then renamed: a running `mailmeet` never sees half a file.
await Deno.copyFile(bundle, `${copy}.tmp`);
await Deno.rename(`${copy}.tmp`, copy);

const out = await new Deno.Command(Deno.execPath(), {
  args: [
    "install",
    "--global",
    "--force",
    "--no-config",
    "--quiet",
    "--root",
    root,
    "--name",
    "mailmeet",
    ...PERMISSIONS,
    copy,
  ],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!out.success) fail("deno install failed (see above).");
const bin = join(root, "bin", Deno.build.os === "windows" ? "mailmeet.cmd" : "mailmeet");
console.log(
  `Installed ${bin}, running its own copy ${copy}: moving or deleting this checkout leaves it working.`,
);
const path = (Deno.env.get("PATH") ?? "").split(Deno.build.os === "windows" ? ";" : ":");
if (!path.includes(join(root, "bin"))) {
  console.log(`Add ${join(root, "bin")} to your PATH to run \`mailmeet\`.`);
}
