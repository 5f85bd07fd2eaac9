/**
 * A machine of its own for each benchmark process: fresh config, data and run folders under `dir`,
 * so no run finds the links a previous one remembered (it would dial them before its request and
 * time nothing) and nothing lands in the real home folder.
 */
export class FreshHomes {
  #made = 0;
  constructor(readonly dir: string) {}

  /** The XDG variables of a new home for the process `name`. */
  make(name: string): Record<string, string> {
    const root = `${this.dir}/home-${name}-${++this.#made}`;
    Deno.mkdirSync(`${root}/run`, { recursive: true, mode: 0o700 });
    return {
      XDG_CONFIG_HOME: `${root}/config`,
      XDG_DATA_HOME: `${root}/data`,
      XDG_RUNTIME_DIR: `${root}/run`,
    };
  }
}
