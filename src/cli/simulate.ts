import { existsSync, readFileSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { EstError } from '../errors.js';
import { loadConfig } from '../config/load.js';
import { buildProfiles } from '../profiles.js';
import { ProfileDirectory, type Profile } from '../policy/profile.js';
import { addressRefusal, screenEnrollment, type ScreenedEnrollment } from '../enrollment/pipeline.js';
import { describePrincipal, passcodeById, type ClientCredentials } from '../auth/authenticate.js';
import { passcodeStatus, passcodeUseRefusal } from '../auth/passcode.js';
import { openStore } from '../store/open.js';
import { describeStore, storeLocationOf } from '../config/store-location.js';
import { createLogger } from '../ops/logger.js';
import { Metrics } from '../ops/metrics.js';
import { LocalCaUpstream, type CertificatePreview } from '../upstream/local-ca.js';
import { EXTENDED_KEY_USAGE, KEY_USAGE } from '../pki/certificate-builder.js';
import { pemCertificateBlocks, x509 } from '../pki/x509.js';
import type { IssuedNames } from '../pki/names.js';
import { machineTimeZone, parseAdminTime } from './local-time.js';

export interface SimulateOptions {
  readonly config: string;
  readonly profile: string;
  readonly csr: string;
  readonly peer?: string;
  readonly at?: string;
  /** simplereenroll with this certificate (then its chain) as the TLS client certificate. */
  readonly cert?: string;
  /** simpleenroll with this TLS client certificate (a bootstrap / manufacturer certificate), then its chain. */
  readonly clientCert?: string;
  /** As if authenticated by this passcode. */
  readonly passcodeId?: string;
  readonly json?: boolean;
}

/** The steps as an admin reads them; a step another part of est-ra adds later shows by its own name. */
const STEP_NAMES: Readonly<Record<string, string>> = {
  allowlist: 'allowed_ip_addresses',
  authentication: 'authentication',
  renewalOrigin: 'renewal origin',
  csr: 'CSR and proof of possession',
  withinUsageRestrictions: 'operational hours and dates',
  keyTypeAllowed: 'key type',
  renewalAllowed: 'renewal window and key pair',
  channelBindingMatches: 'channel binding',
  signatureAlgorithm: 'signature algorithm',
  subject: 'subject',
  subjectAltName: 'subjectAltName',
  keptIdentity: 'identity of the renewed certificate',
  requestedExtensions: 'extensions the CSR asks for',
  passcodeUse: 'passcode use',
};

interface Step {
  readonly step: string;
  outcome: 'ok' | 'refused' | 'skipped';
  detail?: string;
}

/**
 * `est-ra simulate`: one enrollment as a dry run through the real pieces of
 * the pipeline (router's allowlist check, enrollment/pipeline.ts
 * screenEnrollment: authentication, renewal origin, CSR, policy/decide.ts),
 * printing each decision in order and, when all pass, what the local CA
 * would put into the certificate (upstream/local-ca.ts preview, unsigned).
 * Nothing is recorded or issued: the store is opened read-only (SQLite
 * refuses writes), or an empty one in memory when the file does not exist
 * yet; est upstreams use the /cacerts stored at their last fetch and start
 * nothing. Resolves with the exit status: 0 would be issued, 1 refused.
 */
export async function simulate(options: SimulateOptions, print: (line: string) => void): Promise<number> {
  if (options.cert && options.clientCert) throw new InvalidArgumentError('--cert (a renewal) and --client-cert (an enrollment) exclude each other');
  const config = loadConfig(options.config);
  const timeZone = config.time_zone ?? machineTimeZone();
  const at = options.at === undefined ? new Date() : parseAdminTime(options.at, timeZone, false);
  if (!at) throw new InvalidArgumentError(`--at ${options.at}: give a time (2027-03-31 14:00 or 2027-03-31T14:00, in ${timeZone}; or with Z or an offset)`);
  const now: Date = at;
  const operation = options.cert ? 'simplereenroll' : 'simpleenroll';
  const body = readFileSync(options.csr);
  const certificateFile = options.cert ?? options.clientCert;
  const credentials: ClientCredentials = certificateFile ? clientCertificateOf(certificateFile) : {};

  const location = storeLocationOf(config);
  // A SQLite file not made yet (no serve so far): an empty store in memory stands in.
  const inMemory = 'sqlite' in location && !existsSync(location.sqlite.path);
  const store = inMemory ? await openStore({ sqlite: { path: ':memory:' } }) : await openStore(location, { readOnly: true });
  let profiles: Profile[] = [];
  try {
    profiles = await buildProfiles(config, {
      store,
      logger: createLogger({ level: 'error', format: 'text', silent: true }),
      metrics: new Metrics(NO_METRIC_SOURCES),
      now: () => now,
      dryRun: true,
    });
    const profile = profiles.find((p) => p.name === options.profile);
    if (!profile) throw new InvalidArgumentError(`no profile named '${options.profile}' (profiles: ${profiles.map((p) => p.name).join(', ')})`);

    const steps: Step[] = [];
    const result = await run(profile, new ProfileDirectory(profiles));
    const refusal = result.refusal;
    const certificate = result.screened && !refusal ? await wouldIssue(profile, operation, result.screened) : undefined;

    const header = {
      operation,
      profile: profile.name,
      at: now.toISOString(),
      time_zone: timeZone,
      peer: options.peer ?? null,
      store: inMemory ? `${describeStore(config)} does not exist yet: an empty store in memory` : `${describeStore(config)} (read-only)`,
    };
    if (options.json) {
      print(
        JSON.stringify({
          ...header,
          outcome: refusal ? 'refused' : 'issued',
          steps,
          refusal: refusal ? { step: steps.at(-1)?.step, status: refusal.status, code: refusal.code, reason: refusal.reason } : null,
          certificate: certificate ?? null,
        }),
      );
    } else {
      print(`simulate ${operation} with profile ${profile.name} at ${header.at} (${timeZone})${options.peer ? ` from ${options.peer}` : ''}`);
      print(`store: ${header.store}; nothing is recorded or issued`);
      const width = Math.max(...steps.map((s) => s.step.length));
      for (const s of steps) print(`  ${s.outcome.padEnd(8)} ${s.step.padEnd(width)}  ${s.detail ?? ''}`.trimEnd());
      if (refusal) print(`refused at ${steps.at(-1)?.step ?? '?'}: ${refusal.status} ${refusal.reason} (${refusal.code})`);
      else if (certificate) {
        print('would issue:');
        for (const [name, value] of Object.entries(certificate)) print(`  ${`${name}:`.padEnd(20)}${Array.isArray(value) ? value.join(', ') : value}`);
      }
    }
    return refusal ? 1 : 0;

    /**
     * The steps in the order a device's request meets them; the first refusal
     * ends the run. A step counts as refusing from when it begins until the
     * next one begins or the run ends: the step that throws is the one that refused.
     */
    async function run(profile: Profile, directory: ProfileDirectory): Promise<{ screened?: ScreenedEnrollment; refusal?: EstError }> {
      const begin = (step: string): void => {
        const last = steps.at(-1);
        if (last?.outcome === 'refused') last.outcome = 'ok'; // the step before passed
        steps.push({ step: STEP_NAMES[step] ?? step, outcome: 'refused' });
      };
      const detail = (text: string): void => void (steps.at(-1)!.detail = text);
      try {
        begin('allowlist');
        if (options.peer === undefined) {
          const last = steps.at(-1)!;
          last.outcome = profile.allowlist.blocks.length === 0 ? 'ok' : 'skipped';
          last.detail = profile.allowlist.blocks.length === 0 ? 'any address' : 'not checked: give --peer';
        } else {
          const refused = addressRefusal(profile, options.peer);
          if (refused) throw refused;
          detail(`${options.peer} allowed`);
        }
        const screened = await screenEnrollment(
          { store, profiles: directory, ...(options.passcodeId !== undefined ? { authenticatePasscode: passcodeById(options.passcodeId) } : {}) },
          { operation, profile, peerAddress: options.peer ?? '127.0.0.1', credentials, body },
          now,
          {
            principal: (principal) => {
              const authentication = steps.find((s) => s.step === STEP_NAMES.authentication);
              if (authentication) authentication.detail = describePrincipal(principal);
            },
            step: (name) => {
              begin(name);
              if (name !== 'channelBindingMatches') return true;
              // RFC 7030 §3.5 binds the CSR to the device's own TLS connection, which a dry run does not have.
              steps.at(-1)!.outcome = 'skipped';
              detail("not simulated: it needs the device's own TLS connection");
              return false;
            },
          },
        );
        const last = steps.at(-1);
        if (last?.outcome === 'refused') last.outcome = 'ok';
        describeDecisions(steps, screened);
        if (screened.principal.kind === 'passcode') {
          // The enrollment service takes a use with recording the request (service.ts): the passcode must have one left then.
          begin('passcodeUse');
          const record = await store.getPasscode(screened.principal.passcodeId);
          if (!record || passcodeStatus(record, now) !== 'enabled') {
            throw new EstError('EST_AUTH_FAILED', { reason: passcodeUseRefusal(screened.principal.passcodeId, record, now) });
          }
          steps.at(-1)!.outcome = 'ok';
          detail(`${record.uses} of ${record.maxUses ?? 'unlimited'} uses taken${record.expiresAt ? `, expires ${record.expiresAt}` : ''}`);
        }
        return { screened };
      } catch (err) {
        const refusal = err instanceof EstError ? err : new EstError('EST_INTERNAL', { cause: err });
        const last = steps.at(-1);
        if (last)
          last.detail = `${refusal.status} ${refusal.reason}${refusal.code === 'EST_INTERNAL' ? ` (${err instanceof Error ? err.message : String(err)})` : ''}`;
        return { refusal };
      }
    }
  } finally {
    for (const profile of profiles) profile.upstream.close?.();
    await store.close();
  }
}

/** What each passed step found, next to its name. */
function describeDecisions(steps: Step[], screened: ScreenedEnrollment): void {
  const set = (name: string, text: string): void => {
    const step = steps.find((s) => s.step === STEP_NAMES[name]);
    if (step?.outcome === 'ok') step.detail = text;
  };
  set('keyTypeAllowed', screened.csr.keyType);
  if (!screened.current) set('renewalAllowed', 'applies to simplereenroll only');
  set('csr', `signature verifies; subject ${screened.csr.subject || '(empty)'}`);
  const { subject, san } = describeNames(screened.decision.names);
  set('subject', subject);
  set('subjectAltName', san);
  set('keptIdentity', [subject, san].filter((t) => t !== '(none)').join('; '));
}

function describeNames(names: IssuedNames): { subject: string; san: string } {
  return {
    subject: names.subject.map((e) => `${e.kind}=${e.value}`).join(', ') || '(none)',
    san: names.san.map((e) => `${e.kind}:${e.value}`).join(', ') || '(none)',
  };
}

/** The TLS client certificate from a PEM file (certificate, then its chain) or a DER file. */
function clientCertificateOf(file: string): ClientCredentials {
  const bytes = readFileSync(file);
  const blocks = pemCertificateBlocks(bytes.toString('latin1'));
  const ders = blocks.length > 0 ? blocks.map((block) => Buffer.from(new x509.X509Certificate(block).rawData)) : [bytes];
  return { clientCertificate: ders[0], clientChain: () => ders.slice(1) };
}

const KEY_USAGE_NAMES = Object.entries(KEY_USAGE);
const EKU_NAMES = new Map(Object.entries(EXTENDED_KEY_USAGE).map(([name, oid]) => [oid as string, name]));
const SAN_PREFIX: Readonly<Record<string, string>> = { dns: 'DNS', ip: 'IP', email: 'email', url: 'URI', upn: 'UPN' };

/** The certificate the profile would yield: the local CA's own preview, or for an est upstream the names est-ra forwards. */
async function wouldIssue(
  profile: Profile,
  operation: 'simpleenroll' | 'simplereenroll',
  screened: ScreenedEnrollment,
): Promise<Record<string, string | string[]>> {
  if (!(profile.upstream instanceof LocalCaUpstream)) {
    const { subject, san } = describeNames(screened.decision.names);
    return {
      upstream: 'est: the upstream CA decides the certificate; est-ra forwards the CSR unchanged',
      subject,
      subjectAltName: san,
      'extended key usage': profile.extendedKeyUsageOids.map((oid) => EKU_NAMES.get(oid) ?? oid),
    };
  }
  const preview: CertificatePreview = profile.upstream.preview(operation, screened.csr, screened.decision.names, screened.current);
  const extensions = preview.extensions.map((der) => x509.ExtensionFactory.create(Buffer.from(der)));
  const san = extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension);
  const keyUsage = extensions.find((e) => e instanceof x509.KeyUsagesExtension);
  const eku = extensions.find((e) => e instanceof x509.ExtendedKeyUsageExtension);
  const days = Math.round((preview.notAfter.getTime() - preview.notBefore.getTime()) / 86_400_000);
  return {
    subject: preview.subject || '(empty)',
    subjectAltName: san ? san.names.items.map((n) => `${SAN_PREFIX[n.type] ?? n.type}:${n.value}`) : '(none)',
    'key usage': keyUsage ? KEY_USAGE_NAMES.filter(([, flag]) => (keyUsage.usages & flag) !== 0).map(([name]) => name) : '(none)',
    'extended key usage': eku ? eku.usages.map((oid) => EKU_NAMES.get(String(oid)) ?? String(oid)) : '(none)',
    validity: `${preview.notBefore.toISOString()} to ${preview.notAfter.toISOString()} (${days} days)`,
  };
}

/** Metrics are never scraped in a dry run; the sources answer nothing. */
const NO_METRIC_SOURCES = {
  countWaiting: async () => ({}),
  pendingApprovals: async () => ({}),
  upstreams: () => [],
  certificates: async () => [],
  passcodes: async () => [],
  storeReachable: async () => true,
  now: () => new Date(),
};
