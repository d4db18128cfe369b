import type { ServerResponse } from 'node:http';
import type { Profile, ProfileDirectory } from '../policy/profile.js';
import { checkRenewalOrigin } from '../policy/renewal-origin.js';
import { decide } from '../policy/decide.js';
import { parseAndVerifyCsr } from '../pki/csr.js';
import { buildCertsOnly } from '../pki/certs-only.js';
import type { NewRequest, Operation, Store } from '../store/types.js';
import { authenticateEnroll, authenticateReenroll, type ClientCredentials } from '../auth/authenticate.js';
import type { EnrollmentService } from '../enrollment/service.js';
import { decodeDerBody } from '../pki/der-body.js';
import { MEDIA_TYPE } from './media-types.js';
import { sendBase64, sendBase64Reused, sendNoContent, toEstError } from './respond.js';
import type { Base64Framing } from '../pki/der-body.js';
import type { EstRequestState } from './router.js';

export interface HandlerDependencies {
  readonly store: Store;
  readonly profiles: ProfileDirectory;
  readonly enrollment: EnrollmentService;
  readonly now: () => Date;
}

/** GET /cacerts (RFC 7030 §4.1): anonymous, the profile's CA certificates as certs-only PKCS#7. */
export async function handleCacerts(profile: Profile, res: ServerResponse, framing: Base64Framing): Promise<void> {
  sendBase64Reused(res, MEDIA_TYPE.cacerts, await profile.cacertsPkcs7(), framing);
}

/** GET /csrattrs (RFC 7030 §4.5): what the profile asks a CSR to contain, or 204 when nothing. */
export async function handleCsrattrs(profile: Profile, res: ServerResponse, framing: Base64Framing): Promise<void> {
  const attributes = await profile.csrAttrs();
  if (attributes) sendBase64Reused(res, MEDIA_TYPE.csrattrs, attributes, framing);
  else sendNoContent(res);
}

export interface EnrollRequest {
  readonly operation: Operation;
  readonly profile: Profile;
  readonly peerAddress: string;
  readonly credentials: ClientCredentials;
  readonly body: Buffer;
  readonly framing: Base64Framing;
}

/**
 * POST /simpleenroll and /simplereenroll (RFC 7030 §4.2): authenticate,
 * decode, decide, then hand over to the enrollment service (record, forward,
 * record). Every refusal after authentication was attempted is recorded
 * with its reason.
 */
export async function handleEnroll(deps: HandlerDependencies, request: EnrollRequest, state: EstRequestState, res: ServerResponse): Promise<void> {
  const { profile, operation } = request;
  const record: { -readonly [K in keyof NewRequest]: NewRequest[K] } = {
    id: state.id,
    receivedAt: deps.now(),
    profile: profile.name,
    peerAddress: request.peerAddress,
    principal: { kind: 'none' },
    operation,
  };
  let decided = false;
  try {
    const now = record.receivedAt;
    const identity =
      operation === 'simplereenroll'
        ? await authenticateReenroll(profile, request.credentials, now)
        : { principal: await authenticateEnroll(deps.store, profile, request.credentials, now), certificate: undefined };
    record.principal = state.principal = identity.principal;
    if (identity.certificate) await checkRenewalOrigin(deps.store, deps.profiles, profile, identity.certificate);
    record.csr = decodeDerBody(request.body);
    const csr = await parseAndVerifyCsr(record.csr);
    // A downstream RA enrolls for a device: record both, the RA's certificate and the device the CSR names.
    if (identity.principal.kind === 'ra') record.principal = state.principal = { ...identity.principal, device: csr.subject };
    const decision = decide(profile, {
      operation,
      csr,
      principal: record.principal,
      current: identity.certificate,
      channelBinding: request.credentials.channelBinding,
      now,
    });
    decided = true;
    const { certificate, replayed } = await deps.enrollment.enroll(profile, { ...record, csr, current: identity.certificate, names: decision.names });
    state.outcome = replayed ? 'issued earlier' : 'issued';
    state.serial = certificate.serialNumber;
    sendBase64(res, MEDIA_TYPE.certsOnly, buildCertsOnly([certificate.der]), request.framing);
  } catch (err) {
    const error = toEstError(err);
    // After the decision the enrollment service records what happened. Before
    // it, a bare first attempt without credentials is the client asking for
    // the challenge (libest always does this), not a request to record.
    if (!decided && error.code !== 'EST_AUTH_REQUIRED') await deps.store.recordRefused(record, deps.now(), error.status, error.reason);
    if (error.code === 'EST_PENDING') state.outcome = `pending: ${error.reason}`;
    throw error;
  }
}
