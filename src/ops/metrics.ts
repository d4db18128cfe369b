import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** A certificate est-ra depends on, for the days-left gauge and /readyz. */
export interface WatchedCertificate {
  /** tls: est-ra's server certificate · ca: a CA a profile issues under · ra: est-ra's RA certificate towards an upstream. */
  readonly kind: 'tls' | 'ca' | 'ra';
  /** The profile it belongs to ('' for the TLS certificate). */
  readonly profile: string;
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * What the gauges read at scrape time, so they are right after a restart and
 * a reload. Set by the composition root once the parts exist.
 */
export interface MetricSources {
  countWaiting(): Promise<Record<string, number>>;
  /** Per profile with an upstream: false while est-ra is probing it after failures (requests are queued). */
  upstreams(): readonly { readonly profile: string; readonly reachable: boolean }[];
  certificates(): Promise<readonly WatchedCertificate[]>;
  /** Per authentication policy: uses taken, and passcodes by status. */
  passcodes(): Promise<readonly { readonly policy: string; readonly uses: number; readonly byStatus: Readonly<Record<string, number>> }[]>;
  /** Pending approvals not expired yet, per profile. */
  pendingApprovals(): Promise<Record<string, number>>;
  /** The store answers a read. */
  storeReachable(): Promise<boolean>;
  now(): Date;
}

/** The outcome label of a request's metrics, from its HTTP status: a small fixed set, for alerts. */
export function outcomeOf(status: number, replayed: boolean): string {
  if (status === 200) return replayed ? 'replayed' : 'ok';
  if (status === 202) return 'pending';
  if (status === 429) return 'throttled';
  if (status >= 500) return status === 501 ? 'not_implemented' : 'failed';
  return 'refused';
}

const DAY_MS = 86_400_000;

/**
 * est-ra's Prometheus metrics. One registry per server (tests run several
 * in one process), with what an admin alerts on: requests by outcome and
 * latency, upstream reachability and failures by kind, the
 * store-and-forward queue, days left on every certificate est-ra depends on,
 * and passcode uses.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'est_ra_requests_total',
    help: 'EST requests answered, by profile, operation, HTTP status and outcome (ok, replayed, pending, refused, throttled, failed, not_implemented)',
    labelNames: ['profile', 'operation', 'status', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly requestSeconds = new Histogram({
    name: 'est_ra_request_duration_seconds',
    help: 'Time from request to answer, by operation and outcome',
    labelNames: ['operation', 'outcome'] as const,
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
  readonly raRenewalFailures = new Counter({
    name: 'est_ra_ra_certificate_renewal_failures_total',
    help: "Failed attempts to renew est-ra's RA certificate at the upstream, by profile",
    labelNames: ['profile'] as const,
    registers: [this.registry],
  });
  readonly waiting: Gauge<'state'>;
  readonly upstreamReachable: Gauge<'profile'>;
  readonly certificateDaysLeft: Gauge<'kind' | 'profile' | 'subject'>;
  readonly passcodeUses: Gauge<'policy'>;
  readonly passcodes: Gauge<'policy' | 'status'>;
  readonly approvalsPending: Gauge<'profile'>;

  constructor(sources: MetricSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'est_ra_' });
    this.waiting = new Gauge({
      name: 'est_ra_requests_waiting',
      help: 'Requests waiting for the upstream (queued: unreachable, pending: approval)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        const counts = await sources.countWaiting();
        for (const state of ['queued', 'pending']) this.set({ state }, counts[state] ?? 0);
      },
    });
    this.upstreamReachable = new Gauge({
      name: 'est_ra_upstream_reachable',
      help: 'Per profile with an upstream: 1 when it answers, 0 while est-ra queues requests and probes it',
      labelNames: ['profile'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const upstream of sources.upstreams()) this.set({ profile: upstream.profile }, upstream.reachable ? 1 : 0);
      },
    });
    this.certificateDaysLeft = new Gauge({
      name: 'est_ra_certificate_days_left',
      help: "Days until a certificate est-ra depends on expires (kind tls: its server certificate, ca: a profile's CAs, ra: its RA certificate)",
      labelNames: ['kind', 'profile', 'subject'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        const now = sources.now().getTime();
        for (const certificate of await sources.certificates())
          this.set(
            { kind: certificate.kind, profile: certificate.profile, subject: certificate.subject },
            Math.round(((certificate.notAfter.getTime() - now) / DAY_MS) * 100) / 100,
          );
      },
    });
    let passcodeCounts: Promise<Awaited<ReturnType<MetricSources['passcodes']>>> | undefined;
    // Both passcode gauges read one query per scrape.
    const readPasscodes = (): Promise<Awaited<ReturnType<MetricSources['passcodes']>>> => {
      passcodeCounts ??= sources.passcodes().finally(() => setImmediate(() => (passcodeCounts = undefined)));
      return passcodeCounts;
    };
    this.passcodeUses = new Gauge({
      name: 'est_ra_passcode_uses',
      help: 'Enrollments authenticated by passcodes, by authentication policy (uses given back when the upstream refused are not counted)',
      labelNames: ['policy'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const policy of await readPasscodes()) this.set({ policy: policy.policy }, policy.uses);
      },
    });
    this.approvalsPending = new Gauge({
      name: 'est_ra_approvals_pending',
      help: 'Requests waiting for an administrator (est-ra approvals), by profile; expired ones are not counted',
      labelNames: ['profile'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const [profile, count] of Object.entries(await sources.pendingApprovals())) this.set({ profile }, count);
      },
    });
    this.passcodes = new Gauge({
      name: 'est_ra_passcodes',
      help: 'Passcodes by authentication policy and status (enabled, used_up, expired, disabled)',
      labelNames: ['policy', 'status'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const policy of await readPasscodes())
          for (const [status, count] of Object.entries(policy.byStatus)) this.set({ policy: policy.policy, status }, count);
      },
    });
  }
}

/** What /readyz answers: ready when the store answers and every certificate est-ra depends on is valid now. */
export async function readiness(sources: MetricSources): Promise<{ ready: boolean; checks: Record<string, unknown> }> {
  const store = await sources.storeReachable().catch(() => false);
  const now = sources.now().getTime();
  let invalid: string[];
  try {
    invalid = (await sources.certificates())
      .filter((c) => now < c.notBefore.getTime() || now > c.notAfter.getTime())
      .map((c) => `${c.kind}${c.profile ? ` ${c.profile}` : ''}: ${c.subject} is not valid now`);
  } catch (err) {
    invalid = [`certificates unreadable: ${err instanceof Error ? err.message : String(err)}`];
  }
  // An unreachable upstream does not make est-ra unready: requests are recorded and queued (store and forward).
  const upstreams = Object.fromEntries(sources.upstreams().map((u) => [u.profile, u.reachable ? 'reachable' : 'queueing']));
  return {
    ready: store && invalid.length === 0,
    checks: { store: store ? 'ok' : 'unreachable', certificates: invalid.length === 0 ? 'ok' : invalid, upstreams },
  };
}

/** A plain-HTTP listener for /metrics and /healthz, meant for loopback or a management network. */
export async function startOpsListener(metrics: Metrics, sources: MetricSources, host: string, port: number): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = (status: number, contentType: string, body: string): void => {
      res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(body)), 'Cache-Control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return answer(405, 'text/plain', '405 only GET\n');
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => answer(200, metrics.registry.contentType, text),
        () => answer(500, 'text/plain', '500 metrics unavailable\n'),
      );
      return;
    }
    // Alive: the event loop answers. Ready: see readiness().
    if (path === '/healthz') return answer(200, 'text/plain', 'ok\n');
    if (path === '/readyz') {
      readiness(sources).then(
        ({ ready, checks }) => answer(ready ? 200 : 503, 'application/json', `${JSON.stringify({ ready, ...checks })}\n`),
        () => answer(503, 'application/json', '{"ready":false}\n'),
      );
      return;
    }
    answer(404, 'text/plain', '404 not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}` };
}
