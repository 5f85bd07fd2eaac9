import assert from "node:assert/strict";
import { BACKGROUND_NICE, runInBackground } from "../../src/cli/background_priority.ts";

Deno.test("a bulk app lowers itself and every thread it has to nice 10 (on Linux a priority is a thread's)", () => {
  const asked: [number, number][] = [];
  assert.equal(runInBackground((id, p) => asked.push([id, p]), () => [41, 42, 43]), true);
  assert.deepEqual(asked, [[0, 10], [41, 10], [42, 10], [43, 10]]);
  assert.equal(BACKGROUND_NICE, 10);
});

Deno.test("a thread that ended meanwhile does not stop the others being lowered", () => {
  const asked: number[] = [];
  const ok = runInBackground((id) => {
    if (id === 42) throw new Error("No such process");
    asked.push(id);
  }, () => [41, 42, 43]);
  assert.equal(ok, true);
  assert.deepEqual(asked, [0, 41, 43]);
});

Deno.test("a bulk app where priority cannot be changed (no --allow-sys, refused) runs on at normal priority", () => {
  const asked: number[] = [];
  const ok = runInBackground((id) => {
    asked.push(id);
    throw new Deno.errors.NotCapable("Requires sys access");
  }, () => [41]);
  assert.equal(ok, false);
  assert.deepEqual(asked, [0], "no thread is tried once the first refusal says it is not allowed");
});

Deno.test("really: every thread of this process ends up at the background priority", async () => {
  const probe = `
    import { runInBackground } from ${
    JSON.stringify(new URL("../../src/cli/background_priority.ts", import.meta.url).href)
  };
    runInBackground();
    await Deno.readFile("/proc/self/stat");
    const nice = [...Deno.readDirSync("/proc/self/task")].map((e) => {
      const stat = Deno.readTextFileSync("/proc/self/task/" + e.name + "/stat");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
    });
    console.log(JSON.stringify(nice));
  `;
  if (Deno.build.os !== "linux") return;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", probe], stdout: "piped" }).output();
  const nice: number[] = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.ok(nice.length > 1, "Deno runs several threads");
  assert.ok(nice.every((n) => n === 10), `nice per thread: ${nice}`);
});
