import { userInfo } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { x509 } from '../pki/x509.js';
import { parseAndVerifyCsr } from '../pki/csr.js';
import { approvalExpired, approvalRejected } from '../enrollment/approvals.js';
import type { ApprovalState, ApprovalWithRequest, Store } from '../store/types.js';
import { principalJson, principalSummary } from './admin.js';
import { print, printRecord, printRows } from './output.js';
import { withStore, type AdminContext } from './with-store.js';

/**
 * `est-ra approvals`: the administrator's side of require_approval_for_enroll
 * and _renew, acting on a running est-ra through the store both share
 * (SQLite WAL: the CLI's write is one transaction, the server reads it at
 * its next look). Approving queues the request, and the server's retry
 * worker issues it (or forwards it upstream) once, at once, in the
 * background: the certificate is ready when the device retries, and the
 * exactly-once take (markForwarding) is the one every queued request has.
 */

const STATES: readonly ApprovalState[] = ['pending', 'approved', 'rejected', 'expired'];

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number, 1 or more');
  return n;
}

/** Who decides: `--by`, or the OS user running the command. */
function decider(by: string | undefined): string {
  if (by !== undefined) {
    if (by.trim() === '') throw new InvalidArgumentError('--by: give a name');
    return by.trim();
  }
  try {
    return userInfo().username;
  } catch {
    // No passwd entry for this uid (a container): the environment's name, else the uid.
    return process.env.USER ?? `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** A reason as one line (it becomes the device's one-line answer). */
function oneLine(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ').trim();
  if (flat === '') throw new InvalidArgumentError('--reason: give a reason');
  return flat;
}

/**
 * What the device asked for: the CSR's subject (RFC 4514, as requests and
 * certificates show subjects) and SANs, read by the parser that accepted it
 * (pki/csr.ts; its signature was checked then). Once retention pruned the
 * CSR of an issued request: the issued subject.
 */
async function requested(approval: ApprovalWithRequest): Promise<{ subject: string | null; sans: string[] }> {
  const der = approval.request.csr;
  if (!der) return { subject: approval.request.subject, sans: [] };
  const csr = await parseAndVerifyCsr(der, { signatureVerified: true });
  const san = csr.subjectAltName && new x509.SubjectAlternativeNameExtension(new Uint8Array(csr.subjectAltName));
  const sans = (san?.names.toJSON() ?? []).map((name) => `${name.type === 'ip' ? 'IP' : name.type === 'dns' ? 'DNS' : name.type}:${name.value}`);
  return { subject: csr.subject, sans };
}

/** An approval as `approvals list/show --json` give it (docs/admin.md). */
export async function approvalJson(approval: ApprovalWithRequest): Promise<Record<string, unknown>> {
  const { subject, sans } = await requested(approval);
  return {
    id: approval.requestId,
    profile: approval.request.profile,
    operation: approval.request.operation,
    state: approval.state,
    requested_at: approval.requestedAt,
    expires_at: approval.expiresAt,
    decided_at: approval.decidedAt,
    decided_by: approval.decidedBy,
    reason: approval.reason,
    subject,
    sans,
    peer_address: approval.request.peerAddress,
    principal: principalJson(approval.request.principal),
    request_outcome: approval.request.state,
    serial: approval.request.serial,
  };
}

const time = (iso: string | null): string => (iso === null ? '' : iso.slice(0, 19) + 'Z');

/** Approvals whose time ran out are recorded expired before anything is shown or decided. */
async function expireDue({ store, now }: AdminContext): Promise<void> {
  await store.expireApprovals(now, approvalExpired().reason);
}

/** Why a decision was refused: the approval is unknown, or was settled already. */
async function whyNot(store: Store, id: string, verb: 'approve' | 'reject'): Promise<string> {
  const approval = await store.getApproval(id);
  if (!approval) return `no approval ${id}: no request with this id waited for approval`;
  const at = approval.decidedAt ?? approval.expiresAt;
  switch (approval.state) {
    case 'approved':
      return `cannot ${verb} request ${id}: it was approved by ${approval.decidedBy ?? '?'} at ${at}`;
    case 'rejected':
      return `cannot ${verb} request ${id}: it was rejected by ${approval.decidedBy ?? '?'} at ${at} (${approval.reason ?? 'no reason'})`;
    case 'expired':
    case 'pending':
      // pending: it ran out between the sweep and the decision.
      return `cannot ${verb} request ${id}: its approval expired at ${approval.expiresAt} without a decision`;
  }
}

export function addApprovalCommands(program: Command): void {
  const approvals = program
    .command('approvals')
    .description('requests waiting for an administrator (require_approval_for_enroll / _renew): list, show, approve, reject');
  approvals
    .command('list')
    .description('list approvals, newest first: request, profile, state, what was asked for, who asked, who decided')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .option('--profile <name>', 'only this profile')
    .addOption(new Option('--state <state>', 'only this state').choices(STATES))
    .option('--limit <n>', 'at most this many', positiveInt, 100)
    .option('--json', 'one JSON object per line (fields: docs/admin.md)')
    .action(async (options: { config: string; profile?: string; state?: ApprovalState; limit: number; json?: boolean }) => {
      await withStore(options.config, async (context) => {
        await expireDue(context);
        const rows = await context.store.queryApprovals({
          ...(options.profile !== undefined ? { profile: options.profile } : {}),
          ...(options.state !== undefined ? { state: options.state } : {}),
          limit: options.limit,
        });
        const shown = await Promise.all(rows.map(async (a) => ({ a, json: await approvalJson(a) })));
        printRows(
          shown,
          options.json,
          ({ json }) => json,
          ({ a, json }) => ({
            id: a.requestId,
            requested: time(a.requestedAt),
            profile: a.request.profile,
            operation: a.request.operation,
            state: a.state,
            subject: typeof json.subject === 'string' ? json.subject : '',
            who: principalSummary(a.request.principal),
            peer: a.request.peerAddress,
            expires: a.state === 'pending' ? time(a.expiresAt) : '',
            decided: a.decidedAt === null ? '' : `${time(a.decidedAt)}${a.decidedBy ? ` by ${a.decidedBy}` : ''}`,
            reason: a.reason ?? '',
          }),
        );
      });
    });
  approvals
    .command('show')
    .description('one approval and the request it is for')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .argument('<id>', 'request id, as approvals list shows it')
    .option('--json', 'one JSON object')
    .action(async (id: string, options: { config: string; json?: boolean }) => {
      await withStore(options.config, async (context) => {
        await expireDue(context);
        const approval = await context.store.getApproval(id);
        if (!approval) throw new InvalidArgumentError(`no approval ${id}: no request with this id waited for approval`);
        printRecord(await approvalJson(approval), options.json);
      });
    });
  approvals
    .command('approve')
    .description('approve a pending request: est-ra issues it (or forwards it upstream) now; the device gets it at its next retry')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .argument('<id>', 'request id, as approvals list shows it')
    .option('--by <name>', 'who approves (default: the OS user running this command)')
    .option('--reason <text>', 'a note kept with the decision')
    .option('--json', 'the approval as approvals show --json gives it')
    .action(async (id: string, options: { config: string; by?: string; reason?: string; json?: boolean }) => {
      const by = decider(options.by);
      const reason = options.reason === undefined ? undefined : oneLine(options.reason);
      await withStore(options.config, async (context) => {
        await expireDue(context);
        const decided = await context.store.decideApproval(id, { approved: true, by, at: context.now, ...(reason !== undefined ? { reason } : {}) });
        if (!decided) throw new InvalidArgumentError(await whyNot(context.store, id, 'approve'));
        const approval = await context.store.getApproval(id);
        if (options.json && approval) print(JSON.stringify(await approvalJson(approval)));
        else print(`Request ${id} approved by ${by}: est-ra issues it now; the device gets the certificate at its next retry`);
      });
    });
  approvals
    .command('reject')
    .description('reject a pending request: every retry of it gets 403 with the reason')
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .argument('<id>', 'request id, as approvals list shows it')
    .requiredOption('--reason <text>', 'why; the device is told it')
    .option('--by <name>', 'who rejects (default: the OS user running this command)')
    .option('--json', 'the approval as approvals show --json gives it')
    .action(async (id: string, options: { config: string; reason: string; by?: string; json?: boolean }) => {
      const by = decider(options.by);
      const reason = oneLine(options.reason);
      const refusal = approvalRejected(reason).reason;
      await withStore(options.config, async (context) => {
        await expireDue(context);
        const decided = await context.store.decideApproval(id, { approved: false, by, at: context.now, reason, refusal });
        if (!decided) throw new InvalidArgumentError(await whyNot(context.store, id, 'reject'));
        const approval = await context.store.getApproval(id);
        if (options.json && approval) print(JSON.stringify(await approvalJson(approval)));
        else print(`Request ${id} rejected by ${by}: the device is told "403 ${refusal}"`);
      });
    });
}
