import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * Below the range the kernel takes ports from for outgoing connections (and `listen(0)`): a port found free there
 * stays free until the process it is meant for listens, where one from that range can meanwhile become another
 * test's connection (EADDRINUSE).
 */
const [LOW, HIGH] = belowEphemeralPorts()

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

function belowEphemeralPorts(): [number, number] {
  try {
    const [first] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    if (first !== undefined && first > 12_000) return [Math.max(10_000, first - 12_000), first]
  } catch {
    // Not Linux: the usual range starts at 32768 (49152 on others, which this stays below too).
  }
  return [20_000, 32_768]
}
