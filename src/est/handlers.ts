import type { ServerResponse } from 'node:http';
import type { Profile } from '../policy/profile.js';
import { buildCertsOnly } from '../pki/certs-only.js';
import type { EnrollmentPipeline, EnrollmentRequest } from '../enrollment/pipeline.js';
import { MEDIA_TYPE } from './media-types.js';
import { sendBase64, sendBase64Reused, sendNoContent, toEstError } from './respond.js';
import type { Base64Framing } from '../pki/der-body.js';
import type { EstRequestState } from './router.js';

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

/**
 * POST /simpleenroll and /simplereenroll (RFC 7030 §4.2): the enrollment
 * pipeline (enrollment/pipeline.ts) decides and issues; this turns its
 * answer into HTTP and the request's log line.
 */
export async function handleEnroll(
  pipeline: EnrollmentPipeline,
  request: EnrollmentRequest,
  framing: Base64Framing,
  state: EstRequestState,
  res: ServerResponse,
): Promise<void> {
  try {
    const { certificate, replayed } = await pipeline.enroll(request, {
      principal: (principal) => (state.principal = principal),
      // The device sees the id of the request it belongs to, and every retry of one request carries that id.
      request: (requestId) => {
        state.requestId = requestId;
        res.setHeader('X-Request-Id', requestId);
      },
    });
    state.replayed = replayed;
    state.outcome = replayed ? 'issued earlier' : 'issued';
    state.serial = certificate.serialNumber;
    sendBase64(res, MEDIA_TYPE.certsOnly, buildCertsOnly([certificate.der]), framing);
  } catch (err) {
    const error = toEstError(err);
    if (error.code === 'EST_PENDING') state.outcome = `pending: ${error.reason}`;
    throw error;
  }
}
