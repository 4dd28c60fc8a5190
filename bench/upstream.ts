import { startDemoUpstream } from '../src/demo/upstream.ts'

// The demo controller (or BENCH_SERVICE) as a process of its own, so the benchmark's upstream does not share the
// gateway's event loop. It verifies identity tokens meant for that service name.
const gatewayUrl = process.env.GATEWAY_URL ?? 'http://127.0.0.1:8080'
const upstream = await startDemoUpstream(process.env.BENCH_SERVICE ?? 'controller', () => gatewayUrl)
process.stdout.write(`${upstream.url}\n`)
process.on('SIGTERM', () => void upstream.close().then(() => process.exit(0)))
