import assert from "node:assert/strict";
import { DENO_PERMISSIONS } from "../../src/cli/permissions.ts";

const root = new URL("../../", import.meta.url);

Deno.test("the tasks and the README ask for the permissions mailmeet needs, not -A", async () => {
  const flags = DENO_PERMISSIONS.join(" ");
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks as Record<
    string,
    string
  >;
  for (const name of ["mailmeet", "compile"]) {
    assert.ok(tasks[name].includes(flags), `task ${name}: ${tasks[name]}`);
    assert.ok(!/\s-A\s/.test(tasks[name]), `task ${name} asks for -A`);
  }
  // install runs scripts/install.ts, which installs the command with this same list.
  assert.match(tasks.install, /scripts\/install\.ts/);
  assert.ok(!/\s-A\s/.test(tasks.install), "task install asks for -A");
  const install = await Deno.readTextFile(new URL("scripts/install.ts", root));
  assert.match(install, /const PERMISSIONS = DENO_PERMISSIONS;/);
  assert.ok(!/\s-A\s/.test(tasks.demo), "the demo asks for -A");
  const readme = await Deno.readTextFile(new URL("README.md", root));
  assert.ok(readme.includes(`deno run ${flags} dist/mailmeet.js`), "README: running the bundle");
});
