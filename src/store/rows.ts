import type {
  NodeRecord,
  UpstreamHealthRecord,
  ApprovalRecord,
  ApprovalWithRequest,
  CertificateRecord,
  PasscodeRecord,
  Principal,
  RefusalCount,
  RequestRecord,
} from './types.js';

/**
 * The rows both stores read back, by the column names they share, and the
 * one mapping from a row to a record. What differs is how each database
 * gives a value back: a time is ISO text in SQLite and a Date from
 * PostgreSQL's timestamptz, a flag 0/1 or a boolean, JSON text or jsonb
 * already parsed, a count a number or bigint text. Records always carry ISO
 * strings, booleans and objects.
 */
type Time = string | Date;
type Flag = number | boolean;
type Json<T> = string | T;

const iso = (value: Time): string => (typeof value === 'string' ? value : value.toISOString());
const isoOrNull = (value: Time | null): string | null => (value === null ? null : iso(value));
const flag = (value: Flag): boolean => value === true || value === 1;
const json = <T>(value: Json<T>): T => (typeof value === 'string' ? (JSON.parse(value) as T) : value);

export interface RequestRow {
  id: string;
  received_at: Time;
  completed_at: Time | null;
  profile: string;
  peer_address: string;
  principal: Json<Principal>;
  operation: RequestRecord['operation'];
  csr: Buffer | null;
  csr_sha256: string | null;
  client_certificate: Buffer | null;
  state: RequestRecord['state'];
  status: number | null;
  reason: string | null;
  attempts: number;
  next_attempt_at: Time | null;
  serial: string | null;
  subject: string | null;
  not_after: Time | null;
  possibly_issued_twice_upstream: Flag;
}

export function toRequestRecord(row: RequestRow): RequestRecord {
  return {
    id: row.id,
    receivedAt: iso(row.received_at),
    completedAt: isoOrNull(row.completed_at),
    profile: row.profile,
    peerAddress: row.peer_address,
    principal: json(row.principal),
    operation: row.operation,
    csr: row.csr,
    csrSha256: row.csr_sha256,
    clientCertificate: row.client_certificate,
    state: row.state,
    status: row.status,
    reason: row.reason,
    attempts: row.attempts,
    nextAttemptAt: isoOrNull(row.next_attempt_at),
    serial: row.serial,
    subject: row.subject,
    notAfter: isoOrNull(row.not_after),
    possiblyIssuedTwiceUpstream: flag(row.possibly_issued_twice_upstream),
  };
}

/** An approval's columns beside its request's (`r.*`), prefixed so they cannot clash; the same SQL in both stores. */
export const APPROVAL_COLUMNS = `a.state AS approval_state, a.requested_at AS approval_requested_at, a.expires_at AS approval_expires_at,
  a.decided_at AS approval_decided_at, a.decided_by AS approval_decided_by, a.reason AS approval_reason`;
export const APPROVALS_WITH_REQUESTS = `SELECT r.*, ${APPROVAL_COLUMNS} FROM approvals a JOIN requests r ON r.id = a.request_id`;

export interface ApprovalColumns {
  approval_state: ApprovalRecord['state'];
  approval_requested_at: Time;
  approval_expires_at: Time;
  approval_decided_at: Time | null;
  approval_decided_by: string | null;
  approval_reason: string | null;
}

export type ApprovalRow = RequestRow & ApprovalColumns;

export function toApprovalRecord(row: ApprovalRow): ApprovalRecord {
  return {
    requestId: row.id,
    state: row.approval_state,
    requestedAt: iso(row.approval_requested_at),
    expiresAt: iso(row.approval_expires_at),
    decidedAt: isoOrNull(row.approval_decided_at),
    decidedBy: row.approval_decided_by,
    reason: row.approval_reason,
  };
}

export function toApprovalWithRequest(row: ApprovalRow): ApprovalWithRequest {
  return { ...toApprovalRecord(row), request: toRequestRecord(row) };
}

export interface CertificateRow {
  serial: string;
  request_id: string;
  profile: string;
  subject: string;
  not_before: Time;
  not_after: Time;
  der: Buffer;
}

export function toCertificateRecord(row: CertificateRow): CertificateRecord {
  return {
    serial: row.serial,
    requestId: row.request_id,
    profile: row.profile,
    subject: row.subject,
    notBefore: iso(row.not_before),
    notAfter: iso(row.not_after),
    der: row.der,
  };
}

export interface RefusalCountRow {
  address: string;
  profile: string;
  operation: string;
  code: string;
  hour: string;
  status: number;
  last_reason: string;
  /** bigint in PostgreSQL, which node-postgres gives as text. */
  count: number | string;
  first_at: Time;
  last_at: Time;
}

export function toRefusalCount(row: RefusalCountRow): RefusalCount {
  return {
    address: row.address,
    profile: row.profile,
    operation: row.operation,
    code: row.code,
    hour: row.hour,
    status: row.status,
    lastReason: row.last_reason,
    count: Number(row.count),
    firstAt: iso(row.first_at),
    lastAt: iso(row.last_at),
  };
}

export interface PasscodeRow {
  id: string;
  policy: string;
  username: string | null;
  hash: string;
  description: string | null;
  created_at: Time;
  enabled: Flag;
  max_uses: number | null;
  uses: number;
  expires_at: Time | null;
  registered_values: Json<Record<string, string[]>> | null;
}

export function toPasscodeRecord(row: PasscodeRow): PasscodeRecord {
  return {
    id: row.id,
    policy: row.policy,
    username: row.username,
    hash: row.hash,
    description: row.description,
    createdAt: iso(row.created_at),
    enabled: flag(row.enabled),
    maxUses: row.max_uses,
    uses: row.uses,
    expiresAt: isoOrNull(row.expires_at),
    registeredValues: row.registered_values === null ? {} : json(row.registered_values),
  };
}

export interface UpstreamHealthRow {
  profile: string;
  failures: number;
  next_probe_at: Time;
  probing_node: string | null;
  probe_expires_at: Time | null;
}

export function toUpstreamHealthRecord(row: UpstreamHealthRow): UpstreamHealthRecord {
  return {
    profile: row.profile,
    failures: row.failures,
    nextProbeAt: new Date(row.next_probe_at),
    probingNode: row.probing_node,
    probeExpiresAt: row.probe_expires_at === null ? null : new Date(row.probe_expires_at),
  };
}

export interface NodeRow {
  name: string;
  instance: string;
  host: string;
  machine_id: string | null;
  pid: number;
  version: string;
  started_at: Time;
  last_seen_at: Time;
  stopped_at: Time | null;
}

export function toNodeRecord(row: NodeRow): NodeRecord {
  return {
    name: row.name,
    instance: row.instance,
    host: row.host,
    machineId: row.machine_id,
    pid: row.pid,
    version: row.version,
    startedAt: iso(row.started_at),
    lastSeenAt: iso(row.last_seen_at),
    stoppedAt: isoOrNull(row.stopped_at),
  };
}
