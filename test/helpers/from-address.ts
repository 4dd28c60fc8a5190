import { request } from 'node:http'

export interface PlainResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  json(): any
}

/**
 * A real HTTP request from a chosen local address: any of 127.0.0.0/8 reaches the gateway on 127.0.0.1, so tests
 * can be many clients, each with an address of its own, without trusting any forwarding header.
 */
export function requestFrom(localAddress: string, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<PlainResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: init.method ?? 'GET', headers: init.headers, localAddress }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (body += chunk))
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body, json: () => JSON.parse(body) }))
    })
    outgoing.on('error', reject)
    outgoing.end(init.body)
  })
}
