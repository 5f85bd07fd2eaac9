import assert from "node:assert/strict";
import { releaseFreedMemory } from "../../src/util/release_memory.ts";

Deno.test({
  name: "on Linux with glibc, freed memory goes back to the system (malloc_trim is reached)",
  ignore: Deno.build.os !== "linux" || Deno.build.env === "musl",
  fn() {
    assert.equal(releaseFreedMemory(), true);
  },
});

Deno.test("without --allow-ffi it does nothing and throws nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/trim.ts`;
    const module = new URL("../../src/util/release_memory.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { releaseFreedMemory } from ${JSON.stringify(module)}; console.log(releaseFreedMemory());`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-check", "--allow-read", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(out.stdout).trim();
    assert.equal(said, "false", new TextDecoder().decode(out.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
