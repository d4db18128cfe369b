import { EstError } from '../errors.js';
import type { Profile } from '../policy/profile.js';
import type { ApprovalRecord, Operation } from '../store/types.js';

/**
 * Approvals (DigiCert's require_approval_for_enroll / _renew): what a
 * request needs and what a device is told about one. The admin commands
 * (cli/approvals.ts) record the same reasons the device then gets.
 */

/** Whether the profile makes this operation wait for an administrator. */
export function needsApproval(profile: Profile, operation: Operation): boolean {
  return operation === 'simplereenroll' ? profile.approval.renew : profile.approval.enroll;
}

/** 202 while an administrator has not decided: the profile's Retry-After, exactly (libest sleeps all of it). */
export function awaitingApproval(profile: Profile): EstError {
  return EstError.pending(profile.approval.retryAfterS, 'request awaiting approval by an administrator');
}

/** 403 for every retry of a rejected request, with the administrator's reason. */
export function approvalRejected(reason: string): EstError {
  return new EstError('EST_APPROVAL_REJECTED', { reason: `request rejected by an administrator: ${reason}` });
}

export function approvalExpired(): EstError {
  return new EstError('EST_APPROVAL_EXPIRED');
}

/** The answer to a retry of a request whose approval was rejected or has expired. */
export function approvalRefusal(approval: ApprovalRecord): EstError {
  return approval.state === 'rejected' ? approvalRejected(approval.reason ?? 'no reason given') : approvalExpired();
}
