/** The JSON lines among what gateway processes wrote: their log, when their output is no terminal. */
export function jsonLines(output: string): Record<string, any>[] {
  return output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line))
}
