import { randomUUID } from 'node:crypto';
import type { X509Certificate } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import express, { type NextFunction, type Request, type Response } from 'express';
import { EstError } from '../errors.js';
import type { Profile, ProfileDirectory } from '../policy/profile.js';
import type { Operation, Principal } from '../store/types.js';
import type { Logger } from '../ops/logger.js';
import { LOG_EVENT } from '../ops/log-events.js';
import { outcomeOf, type Metrics } from '../ops/metrics.js';
import { describePrincipal, type ChannelBinding, type ClientCredentials } from '../auth/authenticate.js';
import { CSR_CONTENT_TYPES, isCmcRequest } from './media-types.js';
import { framingFor, sendError, toEstError } from './respond.js';
import { handleCacerts, handleCsrattrs, handleEnroll, handleFullCmc, handleServerKeygen } from './handlers.js';
import type { KeyPackageSigner } from '../pki/server-key.js';
import { peerCertificateOf } from './peer-certificate.js';
import { addressRefusal, type EnrollmentPipeline, type EnrollmentRequest } from '../enrollment/pipeline.js';
import type { RefusalLimiter } from '../ops/refusal-budget.js';
import { LogThrottle } from '../ops/log-throttle.js';

export interface EstDependencies {
  readonly profiles: ProfileDirectory;
  readonly pipeline: EnrollmentPipeline;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly maxBodyBytes: number;
  /** Refused requests per address per minute (429 past the budget). */
  readonly refusals: RefusalLimiter;
  /** Requests without credentials answered with the 401 challenge, per address per minute: a budget of their own (429 past it). */
  readonly challenges: RefusalLimiter;
  /** How long an address past its budget waits for each 429 (limits.refused_answer_delay_ms), read per request. */
  readonly refusedAnswerDelayMs: () => number;
  /** est-ra's TLS identity in force, which signs an encrypted server-generated key (RFC 7030 §4.4.2). */
  readonly keyPackageSigner: () => KeyPackageSigner;
}

/** The operations of RFC 7030 §3.2.2 and the method each takes. */
const OPERATIONS = {
  cacerts: 'GET',
  csrattrs: 'GET',
  simpleenroll: 'POST',
  simplereenroll: 'POST',
  serverkeygen: 'POST',
  fullcmc: 'POST',
} as const;
type OperationName = keyof typeof OPERATIONS;

/** Per-request state shared by the steps below and the log line. */
export interface EstRequestState {
  readonly id: string;
  readonly startedAt: number;
  profile?: Profile;
  operation?: OperationName;
  principal?: Principal;
  /** 'issued', or the reason a request was refused. */
  outcome?: string;
  serial?: string;
  /** The recorded request this exchange belongs to, when it is an enrollment: `id` when new, an earlier one for a retry. */
  requestId?: string;
  /** A retry answered with the certificate issued earlier. */
  replayed?: boolean;
  /** The EstError code of a refusal. */
  code?: string;
}

/**
 * Builds the router mounted at /.well-known/est. The order of the steps is
 * the order a request meets them:
 * request id + log line → route (label → profile, operation, method) →
 * body limit → content type → operation (authenticate, decode, decide,
 * record, issue) → the one error renderer.
 */
export function buildEstRouter(deps: EstDependencies): express.Router {
  const router = express.Router();
  router.use(logEachRequest(deps.logger, deps.metrics));
  router.use(refuseFloodingAddress([deps.refusals, deps.challenges], deps.refusedAnswerDelayMs));
  router.use(resolveRoute(deps.profiles));
  router.use((req, res, next) => {
    refuseDisallowedAddress(deps, req, res).then(() => next(), next);
  });
  router.use(express.raw({ type: () => true, limit: deps.maxBodyBytes, inflate: false }));
  router.use(requireCsrContentType);
  router.use((req, res, next) => {
    dispatch(deps, req, res).catch(next);
  });
  router.use(renderError(deps.logger, deps.refusals, deps.challenges));
  return router;
}

export function stateOf(res: Response): EstRequestState {
  return res.locals.est as EstRequestState;
}

function logEachRequest(logger: Logger, metrics: Metrics) {
  // An address past its refusal budget is answered 429 again and again: one line per address per minute, with
  // the count held back, keeps the flood visible without filling the journal (measured: 60 MB a minute otherwise).
  const tooMany = new LogThrottle(60_000);
  return (req: Request, res: Response, next: NextFunction): void => {
    const state: EstRequestState = { id: randomUUID(), startedAt: performance.now() };
    res.locals.est = state;
    res.on('finish', () => {
      const seconds = (performance.now() - state.startedAt) / 1000;
      const operation = state.operation ?? 'unknown';
      const outcome = outcomeOf(res.statusCode, state.replayed === true);
      metrics.requests.inc({ profile: state.profile?.name ?? 'none', operation, status: res.statusCode, outcome });
      metrics.requestSeconds.observe({ operation, outcome }, seconds);
      const throttled = res.statusCode === 429 ? tooMany.take(`${req.socket.remoteAddress}`, Date.now()) : undefined;
      if (throttled && !throttled.log) return;
      // A refusal est-ra means is a warning with its reason; the bare first request that asks for the Basic challenge is not.
      const level = res.statusCode >= 400 && state.code !== 'EST_AUTH_REQUIRED' ? 'warn' : 'info';
      logger.log(level, LOG_EVENT.request, {
        id: state.id,
        ...(state.requestId !== undefined && state.requestId !== state.id ? { request_id: state.requestId } : {}),
        method: req.method,
        path: req.originalUrl.split('?')[0],
        peer: req.socket.remoteAddress,
        profile: state.profile?.name,
        operation: state.operation,
        principal: describePrincipal(state.principal),
        status: res.statusCode,
        outcome: state.outcome,
        serial: state.serial,
        duration_ms: Math.round(seconds * 100_000) / 100,
        ...(throttled?.suppressed ? { suppressed: throttled.suppressed } : {}),
      });
    });
    next();
  };
}

/** `/<label segments...>/<operation>`: the label selects the profile (RFC 7030 §3.2.2). */
function resolveRoute(profiles: ProfileDirectory) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const state = stateOf(res);
    const segments = req.path.split('/').filter((s) => s.length > 0);
    const operation = segments.pop();
    if (operation === undefined || !Object.hasOwn(OPERATIONS, operation)) {
      throw new EstError('EST_NOT_FOUND', { reason: 'unknown EST operation' });
    }
    state.operation = operation as OperationName;
    const label = segments.join('/');
    const profile = profiles.resolve(label);
    if (!profile) {
      throw new EstError('EST_UNKNOWN_LABEL', { reason: label === '' ? 'no default EST profile: use a label' : `unknown EST label '${label}'` });
    }
    state.profile = profile;
    const method = OPERATIONS[state.operation];
    if (req.method !== method && !(method === 'GET' && req.method === 'HEAD')) {
      throw new EstError('EST_METHOD', { reason: `${operation} takes ${method}`, headers: { Allow: method } });
    }
    next();
  };
}

/**
 * allowed_ip_addresses, before the body is read and before any challenge
 * (DigiCert's usage restriction). A refused enrollment is recorded like any
 * other refusal.
 */
async function refuseDisallowedAddress(deps: EstDependencies, req: Request, res: Response): Promise<void> {
  const state = stateOf(res);
  const profile = state.profile!;
  const peer = req.socket.remoteAddress ?? '';
  const error = addressRefusal(profile, peer);
  if (!error) return;
  if (state.operation === 'simpleenroll' || state.operation === 'simplereenroll' || state.operation === 'serverkeygen') {
    await deps.pipeline.refuseAddress({ id: state.id, operation: state.operation, profile, peerAddress: peer }, error);
  }
  throw error;
}

/** 415 for a POST whose Content-Type no real client uses for a CSR; /fullcmc checks its own media type after authentication. */
function requireCsrContentType(req: Request, res: Response, next: NextFunction): void {
  if (req.method !== 'POST' || stateOf(res).operation === 'fullcmc') return next();
  const header = req.headers['content-type'];
  const mediaType = header?.split(';')[0]!.trim().toLowerCase();
  if (mediaType !== undefined && mediaType !== '' && !CSR_CONTENT_TYPES.has(mediaType)) {
    throw new EstError('EST_CONTENT_TYPE');
  }
  next();
}

async function dispatch(deps: EstDependencies, req: Request, res: Response): Promise<void> {
  const state = stateOf(res);
  const profile = state.profile!;
  const framing = framingFor(profile.base64Framing, req.headers['user-agent']);
  switch (state.operation) {
    case 'cacerts':
      return handleCacerts(profile, res, framing);
    case 'csrattrs':
      return handleCsrattrs(profile, res, framing);
    case 'simpleenroll':
    case 'simplereenroll':
      return handleEnroll(deps.pipeline, enrollmentRequest(req, state, state.operation, profile), framing, state, res);
    case 'serverkeygen':
      // Optional in RFC 7030 (§4.4): a profile that does not offer it says so as for any operation it lacks,
      // before authentication, as fullcmc is answered.
      if (profile.keyGeneration === 'client_side')
        throw new EstError('EST_NOT_IMPLEMENTED', {
          reason: `profile '${profile.name}' does not generate keys (key_generation_option: client_side): make the key and use simpleenroll`,
        });
      return handleServerKeygen(deps.pipeline, enrollmentRequest(req, state, 'serverkeygen', profile), framing, state, res, deps.keyPackageSigner);
    case 'fullcmc':
      return handleFullCmc(
        deps.pipeline,
        {
          id: state.id,
          profile,
          peerAddress: req.socket.remoteAddress ?? 'unknown',
          credentials: credentialsOf(req, false),
          body: bodyOf(req),
          isCmcRequest: isCmcRequest(req.headers['content-type']),
        },
        req,
        state,
        res,
      );
    default:
      throw new EstError('EST_NOT_IMPLEMENTED', { reason: `${state.operation} is not supported by profile '${profile.name}'` });
  }
}

function enrollmentRequest(req: Request, state: EstRequestState, operation: Operation, profile: Profile): EnrollmentRequest {
  return {
    id: state.id,
    operation,
    profile,
    peerAddress: req.socket.remoteAddress ?? 'unknown',
    credentials: credentialsOf(req, profile.channelBinding),
    body: bodyOf(req),
  };
}

function bodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

/** What TLS and HTTP say about the client, read once here so nothing below needs express. */
function credentialsOf(req: Request, wantChannelBinding: boolean): ClientCredentials {
  if (!(req.socket instanceof TLSSocket)) return { authorization: req.headers.authorization };
  const socket = req.socket;
  const certificate = peerCertificateOf(socket);
  return {
    authorization: req.headers.authorization,
    clientCertificate: certificate?.raw,
    clientChain: () => sentChainOf(certificate),
    channelBinding: wantChannelBinding ? channelBindingOf(socket) : undefined,
  };
}

/**
 * The certificates a client sent after its own (intermediates), as Node links
 * them from the TLS Certificate message. getPeerX509Certificate(), not
 * getPeerCertificate(): it costs ~4 us against ~20 us (no fingerprints), and
 * after it getPeerCertificate(true) no longer sees the chain on Node 20.
 */
function sentChainOf(certificate: X509Certificate | undefined): Buffer[] {
  const chain: Buffer[] = [];
  for (let link = certificate?.issuerCertificate; link && chain.length < 8; link = link.issuerCertificate) {
    chain.push(link.raw);
    if (link.checkIssued(link)) break; // self-signed: the top
  }
  return chain;
}

/**
 * tls-unique is the first Finished message of the handshake (RFC 5929 §3.1):
 * the client's in a full handshake, ours in a resumed one. TLS 1.3 has no
 * tls-unique; RFC 9266 defines tls-exporter: 32 bytes exported with the
 * label EXPORTER-Channel-Binding and an empty context.
 */
function channelBindingOf(socket: TLSSocket): ChannelBinding | undefined {
  if (socket.getProtocol() === 'TLSv1.3') return { type: 'tls-exporter', value: socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)) };
  const first = socket.isSessionReused() ? socket.getFinished() : socket.getPeerFinished();
  return first ? { type: 'tls-unique', value: first } : undefined;
}

/**
 * An address past its budget of refused requests gets 429 until its minute
 * is over, before anything else is spent on it, and only after `delayMs`: a
 * flooder that ignores Retry-After and sends the next request at once on
 * each of its connections would otherwise get thousands of cheap 429s a
 * second, which add up to all of est-ra's CPU (the bench measured a
 * legitimate client's p50 ten times its quiet figure). Held, each connection
 * gets one answer per delay, so max_connections_per_address / delay bounds
 * the work an address can ask for; a held request costs a timer.
 */
function refuseFloodingAddress(budgets: readonly RefusalLimiter[], delayMs: () => number) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const wait = budgets.reduce<number | undefined>((most, budget) => {
      const seconds = budget.retryAfter(req.socket.remoteAddress ?? '', Date.now());
      return seconds === undefined ? most : Math.max(most ?? 0, seconds);
    }, undefined);
    if (wait === undefined) return next();
    const refuse = (): void => next(new EstError('EST_TOO_MANY_REFUSALS', { retryAfter: wait }));
    const delay = delayMs();
    if (delay <= 0) return refuse();
    const timer = setTimeout(refuse, delay);
    // A client that gives up is not answered; its connection is closed already.
    res.once('close', () => clearTimeout(timer));
  };
}

/** What counts against an address's budget: the client's own mistakes and refusals, not the challenge clients ask for first. */
function countsAsRefusal(error: EstError): boolean {
  return error.status >= 400 && error.status < 500 && error.code !== 'EST_AUTH_REQUIRED' && error.code !== 'EST_TOO_MANY_REFUSALS';
}

function renderError(logger: Logger, refusals: RefusalLimiter, challenges: RefusalLimiter) {
  // During a database outage every request fails the same way: its cause once every 10 s (with the count held back), beside each request's own line.
  const storeOutage = new LogThrottle(10_000);
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const error = toEstError(err);
    if (countsAsRefusal(error)) refusals.refused(req.socket.remoteAddress ?? '', Date.now());
    // The challenge is not a refusal (clients ask for it before sending credentials), but a flood of requests
    // without credentials is: uncounted, it got ~1000 401s a second and est-ra's CPU (the bench's hostile section).
    if (error.code === 'EST_AUTH_REQUIRED') challenges.refused(req.socket.remoteAddress ?? '', Date.now());
    const state = res.locals.est as EstRequestState | undefined;
    if (state && state.outcome === undefined) state.outcome = error.reason;
    if (state) state.code = error.code;
    // Only est-ra's own faults are errors; a 501 or an upstream's 502/503 is an answer, told by the request's log line.
    if (error.code === 'EST_INTERNAL')
      logger.error(LOG_EVENT.internalError, { id: state?.id, error: error.cause instanceof Error ? error.cause.stack : String(error.cause) });
    if (error.code === 'EST_STORE_UNAVAILABLE') {
      const throttled = storeOutage.take('store', Date.now());
      if (throttled.log)
        logger.error(LOG_EVENT.storeUnavailable, {
          id: state?.id,
          error: error.cause instanceof Error ? error.cause.message : String(error.cause),
          ...(throttled.suppressed ? { suppressed: throttled.suppressed } : {}),
        });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, error);
  };
}
