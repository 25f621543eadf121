/** `capstan/prometheus`: capstan's metrics on a `prom-client` registry (an optional peer). */
export { collectMetrics, type CollectMetricsOptions, type MetricsRegistry } from './prometheus'
