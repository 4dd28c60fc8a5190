import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * Outside the range the kernel takes ports from for outgoing connections (and `listen(0)`), below it where it leaves
 * room: a port found free there stays free until the process it is meant for listens, where one from that range can
 * meanwhile become another test's connection (EADDRINUSE).
 */
const [LOW, HIGH] = outsideEphemeralPorts()

/**
 * A port nothing listens on now on 127.0.0.1, for a server whose configuration must name its port before it starts
 * (nginx, Caddy, slapd, PostgreSQL, a gateway whose public URL names it).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW))
    if (await listens(port)) return port
    if (attempt === 200) throw new Error(`no free port found in ${LOW}-${HIGH}`)
  }
}

function listens(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

function outsideEphemeralPorts(): [number, number] {
  try {
    const [first, last] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    if (first !== undefined && first > 12_000) return [Math.max(10_000, first - 12_000), first]
    // A range that starts low: the ports above it, where there are enough.
    if (last !== undefined && last < 60_000) return [last + 1, 65_536]
  } catch {
    // Not Linux: the usual range starts at 32768 (49152 on others, which this stays below too).
  }
  return [20_000, 32_768]
}
