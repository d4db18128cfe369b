import type { ServerResponse } from 'node:http';
import type { Profile } from '../policy/profile.js';
import { buildCertsOnly } from '../pki/certs-only.js';
import type { IncomingMessage } from 'node:http';
import type { EnrollmentPipeline, EnrollmentRequest, FullCmcRequest } from '../enrollment/pipeline.js';
import { EstError } from '../errors.js';
import { relayFullCmc } from './fullcmc-relay.js';
import { MEDIA_TYPE } from './media-types.js';
import { sendBase64, sendBase64Reused, sendBody, sendNoContent, toEstError } from './respond.js';
import { multipartMixed } from './multipart.js';
import { envelopeServerKey, pkcs8Of, type KeyPackageSigner } from '../pki/server-key.js';
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
  const { certificate } = await enrollObserved(pipeline, request, state, res);
  sendBase64(res, MEDIA_TYPE.certsOnly, buildCertsOnly([certificate.der]), framing);
}

/**
 * POST /serverkeygen (RFC 7030 §4.4): the same pipeline, which also makes
 * the key; answered `multipart/mixed` with the private key (PKCS#8, or
 * encrypted to the certificate the CSR named, signed by est-ra's TLS
 * identity) and the certificate as certs-only (RFC 7030 §4.4.2). The key is
 * in no log line, record or error: it leaves with this answer.
 */
export async function handleServerKeygen(
  pipeline: EnrollmentPipeline,
  request: EnrollmentRequest,
  framing: Base64Framing,
  state: EstRequestState,
  res: ServerResponse,
  signer: () => KeyPackageSigner,
): Promise<void> {
  const { certificate, serverKey, keyRecipient } = await enrollObserved(pipeline, request, state, res);
  const privateKeyInfo = pkcs8Of(serverKey!);
  const keyPart = keyRecipient
    ? { contentType: MEDIA_TYPE.serverGeneratedKey, der: await envelopeServerKey(privateKeyInfo, keyRecipient, signer()) }
    : { contentType: MEDIA_TYPE.pkcs8, der: privateKeyInfo };
  const { contentType, body } = multipartMixed([keyPart, { contentType: MEDIA_TYPE.certsOnly, der: buildCertsOnly([certificate.der]) }], framing);
  sendBody(res, 200, contentType, body);
}

/** Runs the pipeline, telling the request's log line and answer who asked, which request this is and what came of it. */
async function enrollObserved(pipeline: EnrollmentPipeline, request: EnrollmentRequest, state: EstRequestState, res: ServerResponse) {
  try {
    const enrollment = await pipeline.enroll(request, {
      principal: (principal) => (state.principal = principal),
      // The device sees the id of the request it belongs to, and every retry of one request carries that id.
      request: (requestId) => {
        state.requestId = requestId;
        res.setHeader('X-Request-Id', requestId);
      },
    });
    state.replayed = enrollment.replayed;
    state.outcome = enrollment.replayed ? 'issued earlier' : 'issued';
    state.serial = enrollment.certificate.serialNumber;
    return enrollment;
  } catch (err) {
    const error = toEstError(err);
    if (error.code === 'EST_PENDING') state.outcome = `pending: ${error.reason}`;
    throw error;
  }
}

/** Header names as RFC 7030 §4 writes them (libest matches them as written). */
const ANSWER_HEADER_NAMES: Readonly<Record<string, string>> = {
  'content-type': 'Content-Type',
  'content-transfer-encoding': 'Content-Transfer-Encoding',
  'retry-after': 'Retry-After',
};

/**
 * POST /fullcmc (RFC 7030 §4.3): 501 unless the profile relays it
 * (fullcmc: passthrough, est upstream), whatever the media type; then the
 * pipeline authenticates and records, and the upstream's answer (status,
 * Content-Type, body) goes to the device as it came. An upstream 401 means
 * est-ra's own credentials were refused: that is est-ra's 502, never a
 * challenge the device could answer.
 */
export async function handleFullCmc(
  pipeline: EnrollmentPipeline,
  request: FullCmcRequest,
  req: IncomingMessage,
  state: EstRequestState,
  res: ServerResponse,
): Promise<void> {
  const route = request.profile.fullCmcRoute;
  if (!route) {
    throw new EstError('EST_NOT_IMPLEMENTED', {
      reason: `fullcmc is not supported by profile '${request.profile.name}' (fullcmc: passthrough relays it to an est upstream)`,
    });
  }
  const answer = await pipeline.relayFullCmc(request, { principal: (principal) => (state.principal = principal) }, async () => {
    const relayed = await relayFullCmc(route(), req, res, request.body);
    if (relayed.status === 401) throw new EstError('EST_UPSTREAM_AUTH', { reason: "the upstream CA rejected est-ra's own credentials for /fullcmc" });
    return relayed;
  });
  state.outcome = `relayed; upstream answered ${answer.status}`;
  const headers: Record<string, string | number> = { 'Content-Length': answer.body.length };
  for (const [name, value] of Object.entries(answer.headers)) headers[ANSWER_HEADER_NAMES[name] ?? name] = value;
  res.writeHead(answer.status, headers);
  res.end(answer.body);
}
