declare module 'parse-prometheus-text-format' {
  /** Parses Prometheus's text exposition format; throws on a malformed line. */
  export default function parsePrometheusTextFormat(text: string): unknown[]
}
