/**
 * Counters and histograms whose series are plain objects holding numbers, made once and kept by the code that
 * counts: counting is an increment, with no label hashing or allocation on the request path. prom-client's
 * registry formats them when scraped (they implement its metric interface: `name`, `help`, `type`, `get()`).
 */

type Labels = Record<string, string>

export interface CounterCell {
  readonly labels: Labels
  value: number
}

export interface HistogramSeries {
  readonly labels: Labels
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly counts: Float64Array
  sum: number
  count: number
}

abstract class Family<T extends { labels: Labels }> {
  readonly name: string
  readonly help: string
  readonly labelNames: readonly string[]
  readonly aggregator = 'sum'
  readonly #byKey = new Map<string, T>()

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name
    this.help = help
    this.labelNames = labelNames
  }

  /** The series for these label values (in `labelNames` order), made on first use: keep it where it is counted. */
  series(...values: string[]): T {
    const key = values.join('\u0000')
    let found = this.#byKey.get(key)
    if (!found) {
      const labels: Labels = {}
      this.labelNames.forEach((name, i) => (labels[name] = values[i] ?? ''))
      found = this.create(labels)
      this.#byKey.set(key, found)
    }
    return found
  }

  protected all(): IterableIterator<T> {
    return this.#byKey.values()
  }

  protected abstract create(labels: Labels): T
}

export class CounterFamily extends Family<CounterCell> {
  readonly type = 'counter'
  /** Runs before each scrape: for counts kept elsewhere (cache statistics) to be copied in. */
  beforeScrape: () => void = () => {}

  protected create(labels: Labels): CounterCell {
    return { labels, value: 0 }
  }

  /** Series never counted are left out (a labelled family's unused combinations); an unlabelled one always shows. */
  get() {
    this.beforeScrape()
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.all()].filter((cell) => cell.value > 0 || !this.labelNames.length).map(({ labels, value }) => ({ labels, value })) }
  }
}

export class HistogramFamily extends Family<HistogramSeries> {
  readonly type = 'histogram'
  readonly #bounds: readonly number[]

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    super(name, help, labelNames)
    this.#bounds = bounds
  }

  protected create(labels: Labels): HistogramSeries {
    return { labels, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 }
  }

  observe(series: HistogramSeries, value: number): void {
    const bounds = this.#bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    series.counts[i]!++
    series.sum += value
    series.count++
  }

  get() {
    const values: { metricName: string; labels: Labels; value: number }[] = []
    for (const series of this.all()) {
      if (!series.count) continue
      let cumulative = 0
      this.#bounds.forEach((bound, i) => {
        cumulative += series.counts[i]!
        values.push({ metricName: `${this.name}_bucket`, labels: { ...series.labels, le: String(bound) }, value: cumulative })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { ...series.labels, le: '+Inf' }, value: series.count })
      values.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum })
      values.push({ metricName: `${this.name}_count`, labels: series.labels, value: series.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
