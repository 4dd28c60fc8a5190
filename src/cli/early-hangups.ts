/**
 * SIGHUP's default ends a process, and `serve` holds the signal from its own first step (workers.ts `holdHangUps`),
 * which runs only once its modules have loaded: about a second into the process. A hangup in that second (a
 * certificate renewal's hook right after a start, a closed terminal, the process group of `--workers` told to reload)
 * ended the start without a word. The preload (src/vendor/register.ts) holds it from the process's first moment, and
 * serve's own hold takes over what came meanwhile.
 *
 * The preload runs this module from the sources and serve from the bundle, two copies of it: they meet at a key of
 * the process that both name alike. No imports: the preload should load no more of Node than it does.
 */
const EARLY_HOLD = Symbol.for('gatehouse.early-hangups')

interface EarlyHold {
  came: boolean
  readonly hold: () => void
}

type HoldingProcess = NodeJS.Process & { [EARLY_HOLD]?: EarlyHold }

export function holdEarlyHangUps(): void {
  const holding = process as HoldingProcess
  if (holding[EARLY_HOLD]) return
  const early: EarlyHold = {
    came: false,
    hold: () => {
      early.came = true
    },
  }
  process.on('SIGHUP', early.hold)
  holding[EARLY_HOLD] = early
}

/** Ends the preload's hold, if it made one (call with another hold in place): whether a hangup came meanwhile. */
export function releaseEarlyHangUps(): boolean {
  const holding = process as HoldingProcess
  const early = holding[EARLY_HOLD]
  if (!early) return false
  process.off('SIGHUP', early.hold)
  delete holding[EARLY_HOLD]
  return early.came
}
