import { Command, InvalidArgumentError, Option } from 'commander';
import { x509 } from '../pki/x509.js';
import type { ApprovalWithRequest, CertificateRecord, Principal, RefusalCount, RequestRecord, RequestState } from '../store/types.js';
import type { NodeRecord, PasscodeEvent, PasscodeRecord } from '../store/types.js';
import { parseAdminTime, parseDuration } from './local-time.js';
import { print, printRecord, printRows } from './output.js';
import { withStore, type AdminContext } from './with-store.js';

/**
 * The admin's read side over the store: requests, issued certificates and
 * the audit trail, as aligned tables or `--json` (one object per line). The
 * JSON field names are a stable interface (docs/admin.md): scripts and the
 * tests read est-ra's state through them, never through SQL.
 */

const OUTCOMES: readonly RequestState[] = ['issued', 'refused', 'queued', 'pending', 'awaiting_approval', 'received'];

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number, 1 or more');
  return n;
}

/** `--since 24h` (that long ago) or a date/time in the configured time zone. */
function sinceTime(value: string, context: AdminContext): Date {
  const duration = parseDuration(value);
  if (duration !== undefined) return new Date(context.now.getTime() - duration);
  const time = parseAdminTime(value, context.timeZone, false);
  if (!time) throw new InvalidArgumentError(`--since ${value}: give a duration (90m, 24h, 7d, 2w) or a date/time (2026-12-01, 2026-12-01T08:00)`);
  return time;
}

/** Who made a request, in a few words. */
export function principalSummary(principal: Principal): string {
  switch (principal.kind) {
    case 'passcode':
      return `passcode ${principal.passcodeId}`;
    case 'certificate':
      return `certificate ${principal.subject}`;
    case 'ra':
      return `RA ${principal.subject}${principal.device ? ` for ${principal.device}` : ''}`;
    case 'none':
      return '-';
  }
}

/** The principal with snake_case keys, as every other field of the JSON output (registered values keep their own keys). */
export function principalJson(principal: Principal): Record<string, unknown> {
  return Object.fromEntries(Object.entries(principal).map(([key, value]) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value as unknown]));
}

/** A request as `requests list/show --json` and `audit export` give it. */
export function requestJson(request: RequestRecord): Record<string, unknown> {
  return {
    id: request.id,
    received_at: request.receivedAt,
    completed_at: request.completedAt,
    profile: request.profile,
    operation: request.operation,
    peer_address: request.peerAddress,
    principal: principalJson(request.principal),
    outcome: request.state,
    csr_sha256: request.csrSha256,
    status: request.status,
    reason: request.reason,
    attempts: request.attempts,
    next_attempt_at: request.nextAttemptAt,
    serial: request.serial,
    subject: request.subject,
    not_after: request.notAfter,
    possibly_issued_twice_upstream: request.possiblyIssuedTwiceUpstream,
  };
}

/** `requests show`: everything recorded, with the CSR and the certificate being renewed as PEM (null once retention pruned them). */
export function requestDetailsJson(request: RequestRecord): Record<string, unknown> {
  return {
    ...requestJson(request),
    csr: request.csr && pem(request.csr, 'CERTIFICATE REQUEST'),
    client_certificate: request.clientCertificate && pem(request.clientCertificate, 'CERTIFICATE'),
  };
}

function pem(der: Buffer, label: string): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----`;
}

interface CertificateDetails {
  readonly record: CertificateRecord;
  readonly certificate: x509.X509Certificate;
  readonly sans: string[];
}

function details(record: CertificateRecord): CertificateDetails {
  const certificate = new x509.X509Certificate(new Uint8Array(record.der));
  const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  const sans = (san?.names.toJSON() ?? []).map((name) => `${name.type === 'ip' ? 'IP' : name.type === 'dns' ? 'DNS' : name.type}:${name.value}`);
  return { record, certificate, sans };
}

function certificateJson({ record, certificate, sans }: CertificateDetails): Record<string, unknown> {
  return {
    serial: record.serial,
    subject: record.subject,
    sans,
    not_before: record.notBefore,
    not_after: record.notAfter,
    issuer: certificate.issuer,
    profile: record.profile,
    request_id: record.requestId,
  };
}

function commonName(subject: string): string {
  return /(?:^|,\s*)CN=((?:\\.|[^,])+)/.exec(subject)?.[1] ?? subject;
}

/** One line of `audit export`: what happened (`type`) and when (`at`, ISO UTC), then its fields. */
type AuditEvent = { readonly type: string; readonly at: string } & Record<string, unknown>;

/** A passcode event; a creation also says what the passcode allows (as it is now). */
function passcodeEventJson(event: PasscodeEvent, passcodes: ReadonlyMap<string, PasscodeRecord>): AuditEvent {
  const passcode = passcodes.get(event.passcodeId);
  return {
    type: `passcode_${event.event}`,
    at: event.at,
    passcode_id: event.passcodeId,
    policy: event.policy,
    ...(event.event === 'created' && passcode
      ? {
          username: passcode.username,
          description: passcode.description,
          max_uses: passcode.maxUses,
          expires_at: passcode.expiresAt,
        }
      : {}),
  };
}

function refusalsJson(refusal: RefusalCount): AuditEvent {
  return {
    type: 'refusals_counted',
    at: refusal.firstAt,
    last_at: refusal.lastAt,
    hour: refusal.hour,
    peer_address: refusal.address,
    profile: refusal.profile,
    operation: refusal.operation,
    code: refusal.code,
    status: refusal.status,
    count: refusal.count,
    last_reason: refusal.lastReason,
  };
}

/** An approval's events: asked for when the request came, and decided (approved, rejected, or expired at its time). */
function approvalEventsJson(approval: ApprovalWithRequest, since: Date | undefined): AuditEvent[] {
  const base = { request_id: approval.requestId, profile: approval.request.profile, operation: approval.request.operation };
  const events: AuditEvent[] = [];
  if (!since || approval.requestedAt >= since.toISOString())
    events.push({ type: 'approval_requested', at: approval.requestedAt, ...base, expires_at: approval.expiresAt });
  if (approval.decidedAt !== null && (!since || approval.decidedAt >= since.toISOString()))
    events.push({ type: `approval_${approval.state}`, at: approval.decidedAt, ...base, decided_by: approval.decidedBy, reason: approval.reason });
  return events;
}

/** A registry row as `est-ra nodes` shows it: running (seen within a lease), stopped (cleanly), or silent (died, or cut off; its leases have run out). */
function nodeState(node: NodeRecord, leaseMs: number, now: Date): 'running' | 'stopped' | 'silent' {
  if (node.stoppedAt !== null) return 'stopped';
  return now.getTime() - new Date(node.lastSeenAt).getTime() <= leaseMs ? 'running' : 'silent';
}

export function addAdminCommands(program: Command): void {
  program
    .command('nodes')
    .description('the est-ra nodes of this store (cluster.node_name): running, stopped or silent, where, which version, last seen')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .option('--json', 'one JSON object per line: name, state, host, pid, version, started_at, last_seen_at, stopped_at')
    .action(async (options: { config: string; json?: boolean }) => {
      await withStore(options.config, async ({ store, config, now }) => {
        const leaseMs = config.cluster.lease_seconds * 1000;
        printRows(
          (await store.listNodes()).map((node) => ({ ...node, state: nodeState(node, leaseMs, now) })),
          options.json,
          (n) => ({
            name: n.name,
            state: n.state,
            host: n.host,
            pid: n.pid,
            version: n.version,
            started_at: n.startedAt,
            last_seen_at: n.lastSeenAt,
            stopped_at: n.stoppedAt,
          }),
          (n) => ({
            name: n.name,
            state: n.state,
            host: n.host,
            pid: String(n.pid),
            version: n.version,
            started: n.startedAt.slice(0, 19) + 'Z',
            'last seen': n.lastSeenAt.slice(0, 19) + 'Z',
          }),
        );
      });
    });
  const requests = program.command('requests').description('the enrollment requests est-ra recorded, newest first');
  requests
    .command('list')
    .description('list requests (newest first): when, profile, operation, outcome, who, serial, reason')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .option('--since <when>', 'received since: a duration ago (90m, 24h, 7d) or a date/time in time_zone (2026-12-01, 2026-12-01T08:00)')
    .option('--profile <name>', 'only this profile')
    .addOption(new Option('--outcome <state>', 'only this outcome').choices(OUTCOMES))
    .option('--limit <n>', 'at most this many', positiveInt, 100)
    .option('--json', 'one JSON object per line (fields: docs/admin.md)')
    .action(async (options: { config: string; since?: string; profile?: string; outcome?: RequestState; limit: number; json?: boolean }) => {
      await withStore(options.config, async (context) => {
        const rows = await context.store.queryRequests({
          ...(options.since !== undefined ? { since: sinceTime(options.since, context) } : {}),
          ...(options.profile !== undefined ? { profile: options.profile } : {}),
          ...(options.outcome !== undefined ? { state: options.outcome } : {}),
          limit: options.limit,
        });
        printRows(rows, options.json, requestJson, (r) => ({
          id: r.id,
          received: r.receivedAt.slice(0, 19) + 'Z',
          profile: r.profile,
          operation: r.operation,
          outcome: r.state,
          status: r.status === null ? '' : String(r.status),
          peer: r.peerAddress,
          who: principalSummary(r.principal),
          serial: r.serial ?? '',
          reason: r.reason ?? '',
        }));
      });
    });
  requests
    .command('show')
    .description('everything recorded about one request')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .argument('<id>', 'request id, as requests list, the log and the device (X-Request-Id) show it')
    .option('--json', 'one JSON object')
    .action(async (id: string, options: { config: string; json?: boolean }) => {
      await withStore(options.config, async ({ store }) => {
        const request = await store.getRequest(id);
        if (!request) throw new InvalidArgumentError(`no request ${id}`);
        printRecord(requestDetailsJson(request), options.json);
      });
    });

  const certificates = program.command('certificates').description('the certificates est-ra issued or got from its upstream for devices');
  certificates
    .command('list')
    .description('list issued certificates, soonest to expire first')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .option('--expiring <duration>', 'only those not expired yet that expire within this (30d, 12h, 2w)')
    .option('--profile <name>', 'only this profile')
    .option('--device <text>', 'only those whose subject CN or a SAN contains this text (case-insensitive)')
    .option('--limit <n>', 'at most this many', positiveInt, 1000)
    .option('--json', 'one JSON object per line (fields: docs/admin.md)')
    .action(async (options: { config: string; expiring?: string; profile?: string; device?: string; limit: number; json?: boolean }) => {
      await withStore(options.config, async ({ store, now }) => {
        let window = {};
        if (options.expiring !== undefined) {
          const ms = parseDuration(options.expiring);
          if (ms === undefined) throw new InvalidArgumentError(`--expiring ${options.expiring}: give a duration such as 30d, 12h or 2w`);
          window = { notAfterFrom: now, notAfterTo: new Date(now.getTime() + ms) };
        }
        const device = options.device?.toLowerCase();
        // The device filter reads each certificate's SANs, so the limit applies after it.
        const records = await store.queryCertificates({
          ...window,
          ...(options.profile !== undefined ? { profile: options.profile } : {}),
          ...(device === undefined ? { limit: options.limit } : {}),
        });
        const rows = records
          .map(details)
          .filter((d) => device === undefined || [commonName(d.record.subject), ...d.sans].some((name) => name.toLowerCase().includes(device)))
          .slice(0, options.limit);
        printRows(rows, options.json, certificateJson, (d) => ({
          serial: d.record.serial,
          subject: d.record.subject,
          sans: d.sans.join(', '),
          not_after: d.record.notAfter.slice(0, 19) + 'Z',
          profile: d.record.profile,
          request: d.record.requestId,
        }));
      });
    });
  certificates
    .command('show')
    .description('subject, SANs, serial, validity, issuer, profile and request of one certificate')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .argument('<serial>', 'serial number in hex, as certificates list and openssl x509 -serial show it')
    .option('--pem', 'print the certificate as PEM instead')
    .option('--json', 'one JSON object')
    .action(async (serial: string, options: { config: string; pem?: boolean; json?: boolean }) => {
      await withStore(options.config, async ({ store }) => {
        const normalized = serial
          .toLowerCase()
          .replace(/^(serial=)?(0x)?/, '')
          .replace(/:/g, '');
        const record = (await store.getCertificate(normalized)) ?? (await store.getCertificate(normalized.replace(/^0+(?=.)/, '')));
        if (!record) throw new InvalidArgumentError(`no certificate with serial ${serial}`);
        const found = details(record);
        if (options.pem) print(found.certificate.toString('pem'));
        else printRecord(certificateJson(found), options.json);
      });
    });

  program
    .command('audit')
    .description('the audit trail')
    .command('export')
    .description(
      'everything that happened, oldest first, as JSON lines: requests with their outcomes, counted refusals, passcodes created, disabled, enabled, rotated, approvals asked for and decided (docs/admin.md)',
    )
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .option('--since <when>', 'since: a duration ago (24h, 7d) or a date/time in time_zone (2026-12-01)')
    .option('--json', "accepted like every command's --json: the export is always JSON lines")
    .action(async (options: { config: string; since?: string }) => {
      await withStore(options.config, async (context) => {
        const since = options.since !== undefined ? sinceTime(options.since, context) : undefined;
        const { store } = context;
        const passcodes = new Map((await store.listPasscodes()).map((p) => [p.id, p]));
        const events: AuditEvent[] = [
          ...(await store.queryRequests({ ...(since ? { since } : {}), order: 'oldest' })).map((r) => ({
            type: 'request',
            at: r.receivedAt,
            ...requestJson(r),
          })),
          ...(await store.refusalCountsSince(since)).map(refusalsJson),
          ...(await store.passcodeEvents(since)).map((event) => passcodeEventJson(event, passcodes)),
          ...(await store.approvalsSince(since)).flatMap((approval) => approvalEventsJson(approval, since)),
        ];
        // A stable sort: each source is in time order already.
        events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
        for (const event of events) print(JSON.stringify(event));
      });
    });
}

/** `store prune`: the cut-off an admin gave, or the configured retention as est-ra applies it hourly. */
function pruneBefore(options: { before?: string; olderThan?: string }, context: AdminContext): Date {
  if (options.before !== undefined && options.olderThan !== undefined) throw new InvalidArgumentError('give --before or --older-than, not both');
  if (options.before !== undefined) {
    const time = parseAdminTime(options.before, context.timeZone, false);
    if (!time) throw new InvalidArgumentError(`--before ${options.before}: give a date/time (2026-12-01, 2026-12-01T08:00, or exact with Z or an offset)`);
    return time;
  }
  const ms = options.olderThan !== undefined ? parseDuration(options.olderThan) : context.config.store.retention_days * 86_400_000;
  if (ms === undefined) throw new InvalidArgumentError(`--older-than ${options.olderThan}: give a duration such as 90d, 12w or 24h`);
  return new Date(context.now.getTime() - ms);
}

/** Store maintenance an admin runs by hand: the consistency check after a crash, retention now. */
export function addStoreMaintenanceCommands(store: Command): void {
  store
    .command('check')
    .description("the store's consistency check (SQLite integrity_check and foreign keys): prints ok, or each problem and exits 1")
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .option('--json', 'one JSON object: ok, problems')
    .action(async (options: { config: string; json?: boolean }) => {
      await withStore(options.config, async ({ store }) => {
        const problems = await store.check();
        if (options.json) print(JSON.stringify({ ok: problems.length === 0, problems }));
        else print(problems.length === 0 ? 'ok' : problems.join('\n'));
        if (problems.length > 0) process.exitCode = 1;
      });
    });
  store
    .command('prune')
    .description(
      'retention now, as est-ra runs it hourly: removes refused requests and counted refusals finished before the cut-off and the CSR bodies of finished requests; never an issued certificate or a waiting request',
    )
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .option('--before <when>', 'the cut-off: a date/time in time_zone (2026-09-01, 2026-09-01T08:00) or exact with Z or an offset')
    .option('--older-than <duration>', 'the cut-off that long ago (90d, 12w); default: store.retention_days')
    .option('--json', 'one JSON object: before, rows')
    .action(async (options: { config: string; before?: string; olderThan?: string; json?: boolean }) => {
      await withStore(options.config, async (context) => {
        const before = pruneBefore(options, context);
        const rows = await context.store.prune(before);
        if (options.json) print(JSON.stringify({ before: before.toISOString(), rows }));
        else print(`pruned ${rows} rows finished before ${before.toISOString()}`);
      });
    });
}
