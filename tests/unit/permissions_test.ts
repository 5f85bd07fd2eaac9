import assert from "node:assert/strict";
import { DENO_PERMISSIONS } from "../../src/cli/permissions.ts";

const root = new URL("../../", import.meta.url);

Deno.test("the tasks and the README ask for the permissions mailmeet needs, not -A", async () => {
  const flags = DENO_PERMISSIONS.join(" ");
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks as Record<
    string,
    string
  >;
  for (const name of ["mailmeet", "install", "compile"]) {
    assert.ok(tasks[name].includes(flags), `task ${name}: ${tasks[name]}`);
    assert.ok(!/\s-A\s/.test(tasks[name]), `task ${name} asks for -A`);
  }
  assert.ok(!/\s-A\s/.test(tasks.demo), "the demo asks for -A");
  const readme = await Deno.readTextFile(new URL("README.md", root));
  assert.ok(readme.includes(`deno run ${flags} dist/mailmeet.js`), "README: running the bundle");
});
