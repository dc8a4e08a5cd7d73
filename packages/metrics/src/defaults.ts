import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's default process metrics, minus the three gauges it names with
 * a counter's `_total` suffix (promtool rejects them); the per-type
 * `*_active_handles`, `*_active_requests` and `*_active_resources` gauges stay.
 */
export function registerProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`${prefix}${name}`);
  }
}
