import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * est-ra's Prometheus metrics. One registry per server (tests run several
 * in one process), with the counters an admin alerts on: requests by
 * outcome, upstream failures by kind, and the store-and-forward queue.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'est_ra_requests_total',
    help: 'EST requests answered, by profile, operation and HTTP status',
    labelNames: ['profile', 'operation', 'status'] as const,
    registers: [this.registry],
  });
  readonly requestSeconds = new Histogram({
    name: 'est_ra_request_duration_seconds',
    help: 'Time from request to answer, by operation',
    labelNames: ['operation'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly upstreamFailures = new Counter({
    name: 'est_ra_upstream_failures_total',
    help: "Upstream answers that were not a certificate: auth (est-ra's own credentials rejected), unavailable, invalid, refused, pending",
    labelNames: ['profile', 'kind'] as const,
    registers: [this.registry],
  });
  readonly revocationUnknown = new Counter({
    name: 'est_ra_revocation_unknown_total',
    help: 'Client certificates let through by soft_fail although their revocation status was unknown, by authentication policy',
    labelNames: ['policy'] as const,
    registers: [this.registry],
  });
  readonly waiting: Gauge<'state'>;

  /** @param countWaiting read at scrape time from the store, so the gauge is right after a restart too */
  constructor(countWaiting: () => Promise<Record<string, number>>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'est_ra_' });
    this.waiting = new Gauge({
      name: 'est_ra_requests_waiting',
      help: 'Requests waiting for the upstream (queued: unreachable, pending: approval)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        const counts = await countWaiting();
        for (const state of ['queued', 'pending']) this.set({ state }, counts[state] ?? 0);
      },
    });
  }
}

/** A plain-HTTP listener for /metrics and /healthz, meant for loopback or a management network. */
export async function startOpsListener(metrics: Metrics, host: string, port: number): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end('500 metrics unavailable\n');
        },
      );
      return;
    }
    const body = req.method === 'GET' && req.url === '/healthz' ? 'ok\n' : '404 not found\n';
    res.writeHead(body === 'ok\n' ? 200 : 404, { 'Content-Type': 'text/plain', 'Content-Length': String(body.length) });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}` };
}
