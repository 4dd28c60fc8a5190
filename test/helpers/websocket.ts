import { once } from 'node:events'
import WebSocket from 'ws'

export interface RefusedUpgrade {
  status: number
  /** The answer's JSON body; undefined when it had none. */
  body: any
  headers: Record<string, string | string[] | undefined>
  /** From the handshake's start to the answer's head. */
  ms: number
}

/** The answer to a WebSocket upgrade the gateway refuses; fails when it lets the upgrade through. */
export async function refusedUpgrade(url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<RefusedUpgrade> {
  const started = performance.now()
  const ws = new WebSocket(url, { headers, localAddress })
  ws.on('error', () => undefined)
  ws.on('open', () => ws.close())
  const [, response] = await Promise.race([once(ws, 'unexpected-response'), once(ws, 'open').then(() => {
    throw new Error('the upgrade was let through')
  })])
  const ms = performance.now() - started
  let text = ''
  for await (const chunk of response) text += chunk
  return { status: response.statusCode, body: text ? JSON.parse(text) : undefined, headers: response.headers, ms }
}
