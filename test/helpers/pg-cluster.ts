import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.ts'

/**
 * A throwaway PostgreSQL cluster of the test's own, on a free port, for tests that stop, freeze or restart the
 * database: the shared server at 127.0.0.1:5432 must never be touched that way. Runs as the `postgres` system
 * user (PostgreSQL refuses to run as root).
 */
export interface PgCluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string
  readonly port: number
  /** Stops the server (fast shutdown: connections are cut). */
  stop(): void
  start(): void
  restart(): void
  /** SIGSTOP to the server and every backend: connections stay open and nothing answers. */
  freeze(): void
  /** SIGCONT to everything `freeze` stopped. */
  thaw(): void
  /** Stops the server if running and deletes its files. */
  destroy(): void
}

const BIN = findBinDir()

function findBinDir(): string {
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : []
  const found = versions.map((v) => join(root, v, 'bin')).find((dir) => existsSync(join(dir, 'initdb')))
  if (!found) throw new Error('PostgreSQL server binaries not found (Debian package postgresql)')
  return found
}

function asPostgres(command: string, args: string[]): void {
  execFileSync('runuser', ['-u', 'postgres', '--', join(BIN, command), ...args], { stdio: 'ignore', timeout: 60_000 })
}

/** Every process of the cluster: the postmaster and its children. */
function clusterPids(dataDir: string): number[] {
  const pidFile = join(dataDir, 'postmaster.pid')
  if (!existsSync(pidFile)) return []
  const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0])
  let children: number[] = []
  try {
    children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
  } catch {
    // pgrep exits 1 when there are no children.
  }
  return [postmaster, ...children]
}

/**
 * With `tls`, the server also speaks TLS with that certificate and key (copied into the cluster's directory, where
 * the `postgres` user can read them and no one else).
 */
export async function startPgCluster({ tls }: { tls?: { cert: string; key: string } } = {}): Promise<PgCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pg-'))
  chmodSync(dir, 0o700)
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }))
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }))
  chownSync(dir, uid, gid)
  const dataDir = join(dir, 'data')
  asPostgres('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'])
  const port = await freePort()
  let options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`
  if (tls) {
    for (const [name, file] of [['server.crt', tls.cert], ['server.key', tls.key]]) {
      copyFileSync(file, join(dir, name))
      chmodSync(join(dir, name), 0o600)
      chownSync(join(dir, name), uid, gid)
    }
    options += ` -c ssl=on -c ssl_cert_file=${join(dir, 'server.crt')} -c ssl_key_file=${join(dir, 'server.key')}`
  }
  let frozen: number[] = []
  const cluster: PgCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: () => asPostgres('pg_ctl', ['-D', dataDir, '-o', options, '-w', '-l', join(dir, 'log'), 'start']),
    stop: () => {
      cluster.thaw()
      asPostgres('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop'])
    },
    restart: () => {
      cluster.stop()
      cluster.start()
    },
    freeze: () => {
      frozen = clusterPids(dataDir)
      for (const pid of frozen) process.kill(pid, 'SIGSTOP')
    },
    thaw: () => {
      for (const pid of frozen) {
        try {
          process.kill(pid, 'SIGCONT')
        } catch {
          // Already gone.
        }
      }
      frozen = []
    },
    destroy: () => {
      try {
        if (existsSync(join(dataDir, 'postmaster.pid'))) cluster.stop()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
  cluster.start()
  const watcher = watchOver(dir, dataDir)
  const destroy = cluster.destroy
  cluster.destroy = () => {
    watcher.kill()
    destroy()
  }
  return cluster
}

/**
 * A process of its own that stops the cluster (thawed first, if frozen) and deletes its files once this process is
 * gone without `destroy` (killed by a timeout, crashed): else the server would go on running, holding its port and
 * its memory, for as long as the machine does.
 */
function watchOver(dir: string, dataDir: string): { kill(): void } {
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    'pm=$(head -n 1 "$3/postmaster.pid" 2>/dev/null)',
    'if [ -n "$pm" ]; then kill -CONT "$pm" $(pgrep -P "$pm") 2>/dev/null; runuser -u postgres -- "$4/pg_ctl" -D "$3" -m immediate -w stop >/dev/null 2>&1; fi',
    'rm -rf "$2"',
  ].join('\n')
  const child = spawn('sh', ['-c', script, 'sh', String(process.pid), dir, dataDir, BIN], { detached: true, stdio: 'ignore' })
  child.unref()
  return { kill: () => child.kill() }
}
