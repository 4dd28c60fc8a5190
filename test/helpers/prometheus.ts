import parsePrometheusTextFormat from 'parse-prometheus-text-format'

export interface Sample {
  labels: Record<string, string>
  value: number
}

/**
 * A scrape parsed by a Prometheus text-format parser from npm, as samples by metric name. The parser folds a
 * labelled histogram's series into one, so histograms are read as their untyped `_bucket`, `_sum` and `_count`
 * lines (the parser still checks every line's syntax).
 */
export function parseScrape(text: string): Map<string, Sample[]> {
  const families = parsePrometheusTextFormat(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped')) as {
    name: string
    metrics: { labels?: Record<string, string>; value: string }[]
  }[]
  const samples = new Map<string, Sample[]>()
  for (const family of families) {
    const list = samples.get(family.name) ?? []
    for (const metric of family.metrics) list.push({ labels: metric.labels ?? {}, value: Number(metric.value) })
    samples.set(family.name, list)
  }
  return samples
}

/** The value of the sample with exactly these labels; 0 when the series is absent (never counted). */
export function sampleValue(samples: Map<string, Sample[]>, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels)
  const found = (samples.get(name) ?? []).find((sample) =>
    Object.keys(sample.labels).length === wanted.length && wanted.every(([key, value]) => sample.labels[key] === value))
  return found?.value ?? 0
}
