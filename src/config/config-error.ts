/**
 * A configuration that cannot be used, with every problem found. A module of its own, without the schema: the command
 * line's entry matches its errors against it (src/cli/main.ts) before any command has loaded the configuration's code.
 */
export class ConfigError extends Error {
  readonly problems: string[]
  constructor(source: string, problems: string[]) {
    // One problem fits on one line (a file that cannot be read, one wrong value); several are listed one a line.
    super(problems.length === 1 ? `${source}: ${problems[0]}` : `${source}: ${problems.length} problems\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.problems = problems
  }
}
