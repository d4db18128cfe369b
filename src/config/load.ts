import { accessSync, constants, readFileSync, realpathSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { ZodIssue } from 'zod';
import { configSchema, filePath, secret, type Config } from './schema.js';
import { keysAt, nearestName, valuesMarked } from './schema-walk.js';
import { csrAttrsContradictions } from '../policy/csr-wishes.js';
import { configWarnings } from './warnings.js';

/** Every problem found in a configuration file, each naming the field at fault. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`${file}: invalid configuration\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** A validated configuration; file paths in it are absolute (relative ones resolve against the file's folder). */
export type LoadedConfig = Readonly<Config> & { readonly configFile: string };

/** One finding of `est-ra check-config`: an error stops est-ra from starting, a warning does not. */
export interface ConfigFinding {
  readonly severity: 'error' | 'warning';
  /** `<field path>: <problem>`, or `YAML: line L, column C: <problem>`. */
  readonly text: string;
  /** The line of the file it is about, when known (1-based). */
  readonly line?: number;
}

/** What check-config reports: every finding, and the configuration when it has no error. */
export interface ConfigCheck {
  readonly file: string;
  readonly findings: readonly ConfigFinding[];
  readonly config?: LoadedConfig;
}

/**
 * Reads, validates and freezes the YAML configuration, reporting all problems
 * at once (`profiles.demo.validity.duration_value: must be a positive integer`).
 */
export function loadConfig(file: string): LoadedConfig {
  const check = checkConfigFile(file);
  if (!check.config) throw new ConfigError(check.file, errorsOf(check));
  return check.config;
}

const errorsOf = (check: { readonly findings: readonly ConfigFinding[] }): string[] => check.findings.filter((f) => f.severity === 'error').map((f) => f.text);

/**
 * Everything wrong with a configuration file at once: YAML syntax (with line
 * and column), the schema (an unknown setting with the nearest known name),
 * rules across fields, files that cannot be read (with the errno and the user
 * est-ra runs as) whether or not the rest is valid, and, as warnings, secrets
 * from environment variables that are not set here.
 */
export function checkConfigFile(file: string): ConfigCheck {
  let path = resolve(file);
  let text: string;
  try {
    // Through a symlink (/etc/est-ra/config.yaml -> /var/lib/est-ra/config.yaml)
    // relative paths stay relative to the real file, beside its pki/ folder.
    path = realpathSync(path);
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    return { file: path, findings: [{ severity: 'error', text: `cannot read: ${errnoText(cause)} as user ${currentUser()}` }] };
  }
  const parsed = checkConfigText(text, path);
  const environment = parsed.data === undefined ? [] : unsetSecrets(parsed.data);
  const files = parsed.data === undefined ? [] : unreadableFiles(parsed.data, dirname(path));
  const findings = [...parsed.findings, ...files, ...environment].map((f) => withLine(f, parsed.document, parsed.lines));
  const ok = !findings.some((f) => f.severity === 'error');
  if (!ok || !parsed.config) return { file: path, findings };
  // Settings that are valid but unwise (rsa_1024, a key type whose CSR cannot fit max_body_bytes).
  const unwise = configWarnings(parsed.config).map((text): ConfigFinding => ({ severity: 'warning', text }));
  return { file: path, findings: [...findings, ...unwise], config: parsed.config };
}

type Finding = ConfigFinding & { readonly at?: readonly (string | number)[] };

/** Validates configuration text; `path` names it in errors and anchors relative file paths. No file is read. */
export function parseConfig(text: string, path: string): LoadedConfig {
  const check = checkConfigText(text, path);
  if (!check.config) throw new ConfigError(path, errorsOf(check));
  return check.config;
}

/** YAML, schema and cross-field rules of the text, with the document kept for line numbers and the data as read for the file checks. */
function checkConfigText(text: string, path: string): { findings: Finding[]; config?: LoadedConfig; data?: unknown; document?: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, lineCounter: lines });
  if (document.errors.length > 0) {
    return {
      lines,
      findings: document.errors.map((e) => {
        const { line, col } = lines.linePos(e.pos[0]);
        return { severity: 'error', text: `YAML: line ${line}, column ${col}: ${e.message.split('\n')[0]!}`, line };
      }),
    };
  }
  const data: unknown = document.toJS() ?? {};
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) return { lines, document, data, findings: parsed.error.issues.flatMap(describeIssue) };
  const config = parsed.data;
  const problems = crossFieldProblems(config);
  if (problems.length > 0) return { lines, document, data, findings: problems.map((text) => ({ severity: 'error', text })) };
  resolvePaths(config, dirname(path));
  return { lines, document, data, findings: [], config: deepFreeze({ ...config, configFile: path }) };
}

/** The line a finding is about, from the YAML node at its path (the closest existing parent for a missing key). */
function withLine(finding: Finding, document: Document | undefined, lines: LineCounter): ConfigFinding {
  const { at, ...rest } = finding;
  if (!at || !document || rest.line !== undefined) return rest;
  for (let n = at.length; n > 0; n--) {
    const node = document.getIn(at.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return { ...rest, line: lines.linePos(node.range[0]).line };
  }
  return rest;
}

/** The user est-ra runs as, who must be able to read what the configuration names. */
function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`; // a uid without a passwd entry (a container)
  }
}

const ERRNO_MEANING: Partial<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  ENOTDIR: 'a folder on the path is a file',
  EISDIR: 'a directory, not a file',
  ELOOP: 'too many symbolic links',
  EROFS: 'read-only file system',
};

function errnoText(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === undefined) return String(cause);
  return `${code}${ERRNO_MEANING[code] ? ` (${ERRNO_MEANING[code]})` : ''}`;
}

/** Why `file` cannot be opened for `mode` by this process, if it cannot. */
function inaccessible(file: string, mode: number, mustBeFile: boolean): string | undefined {
  try {
    if (mustBeFile && statSync(file).isDirectory()) return errnoText({ code: 'EISDIR' });
    accessSync(file, mode);
    return undefined;
  } catch (cause) {
    return errnoText(cause);
  }
}

/**
 * Every file the configuration names must be readable now, not at the first
 * request that needs it. The settings are found by the schema's `filePath`
 * (config/schema-walk.ts), in the YAML as read, so a missing file is reported
 * together with the schema's problems.
 */
function unreadableFiles(data: unknown, base: string): Finding[] {
  const user = currentUser();
  const findings: Finding[] = [];
  for (const { path, value } of valuesMarked(configSchema, data, [filePath])) {
    const setting = path.join('.');
    if (typeof value !== 'string' || value === '') continue; // the schema reports it
    const file = isAbsolute(value) ? value : resolve(base, value);
    if (setting === 'store.sqlite.path') {
      const folder = dirname(file);
      const why = inaccessible(folder, constants.W_OK, false);
      if (why) findings.push({ severity: 'error', text: `${setting}: cannot write in ${folder}: ${why} as user ${user}`, at: path });
      continue;
    }
    const why = inaccessible(file, constants.R_OK, true);
    if (why) findings.push({ severity: 'error', text: `${setting}: cannot read ${file}: ${why} as user ${user}`, at: path });
  }
  return findings;
}

/** A secret `{ env: NAME }` whose variable is not set here: est-ra serve, started with it set, may still be fine. */
function unsetSecrets(data: unknown): Finding[] {
  return valuesMarked(configSchema, data, [secret]).flatMap(({ path, value }) => {
    const name = (value as { env?: unknown }).env;
    if (typeof name !== 'string' || (process.env[name] ?? '') !== '') return [];
    const text = `${[...path, 'env'].join('.')}: environment variable ${name} is not set here; est-ra serve needs it in its environment`;
    return [{ severity: 'warning' as const, text, at: [...path, 'env'] }];
  });
}

const TYPE_NAMES: Partial<Record<string, string>> = {
  object: 'a mapping of settings (key: value lines)',
  array: 'a list',
  string: 'text',
  number: 'a number',
  boolean: 'true or false',
};

function describeIssue(issue: ZodIssue): Finding[] {
  const at = issue.path.join('.') || '(top level)';
  const finding = (text: string, path: readonly (string | number)[] = issue.path): Finding => ({ severity: 'error', text, at: path });
  if (issue.code === 'unrecognized_keys') {
    const known = keysAt(configSchema, issue.path);
    return issue.keys.map((key) => {
      const near = nearestName(key, known);
      return finding(`${issue.path.concat(key).join('.')}: unknown setting${near ? `; did you mean ${near}?` : ''}`, [...issue.path, key]);
    });
  }
  if (issue.code === 'invalid_type' && issue.received === 'undefined') return [finding(`${at}: is required`)];
  // zod's own wording ("Expected object, received string") where the schema sets none of ours.
  if (issue.code === 'invalid_type' && issue.message.startsWith('Expected '))
    return [finding(`${at}: must be ${TYPE_NAMES[issue.expected] ?? issue.expected}`)];
  return [finding(`${at}: ${issue.message}`)];
}

/** Rules that span fields: references resolve, labels and the default profile are unambiguous. */
function crossFieldProblems(config: Config): string[] {
  const problems: string[] = [];
  const labelOwner = new Map<string, string>();
  const defaults: string[] = [];
  for (const [name, profile] of Object.entries(config.profiles)) {
    if (!(profile.authentication_policy in config.authentication_policies)) {
      problems.push(`profiles.${name}.authentication_policy: no authentication policy named '${profile.authentication_policy}'`);
    }
    if (profile.default) defaults.push(name);
    if (profile.upstream === 'local-ca' && !profile.local_ca) problems.push(`profiles.${name}.local_ca: is required with upstream: local-ca`);
    if (profile.upstream === 'est' && !profile.est) problems.push(`profiles.${name}.est: is required with upstream: est`);
    // An approval holds a request until an administrator decides; a server-generated key is never kept, so it cannot wait.
    if (profile.key_generation_option !== 'client_side' && (profile.require_approval_for_enroll || profile.require_approval_for_renew))
      problems.push(
        `profiles.${name}.key_generation_option: ${profile.key_generation_option} cannot be combined with require_approval_for_enroll/_renew (est-ra never keeps a generated key to wait for a decision)`,
      );
    if (profile.fullcmc === 'passthrough' && profile.upstream !== 'est') problems.push(`profiles.${name}.fullcmc: passthrough needs upstream: est`);
    problems.push(...csrAttrsContradictions(`profiles.${name}`, profile));
    // A live node must finish a forward within its lease, or a second node would forward the same request too.
    if (profile.est && profile.est.timeout_ms + 5_000 > config.cluster.lease_seconds * 1000)
      problems.push(
        `cluster.lease_seconds: ${config.cluster.lease_seconds} s must exceed profiles.${name}.est.timeout_ms (${profile.est.timeout_ms} ms) by at least 5 s`,
      );
    for (const label of profile.labels ?? [name]) {
      const owner = labelOwner.get(label);
      if (owner !== undefined) problems.push(`profiles.${name}.labels: '${label}' is already a label of profile '${owner}'`);
      else labelOwner.set(label, name);
    }
  }
  if (defaults.length > 1) problems.push(`profiles: only one profile may be the default, found ${defaults.join(', ')}`);
  if (Object.keys(config.profiles).length === 0) problems.push('profiles: must define at least one profile');
  return problems;
}

function resolvePaths(config: Config, base: string): void {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  config.tls.certificate = abs(config.tls.certificate);
  config.tls.key = abs(config.tls.key);
  if (config.store.sqlite) config.store.sqlite.path = abs(config.store.sqlite.path);
  const postgres = config.store.postgres;
  if (postgres?.password?.file !== undefined) postgres.password.file = abs(postgres.password.file);
  if (postgres?.ssl?.ca !== undefined) postgres.ssl.ca = abs(postgres.ssl.ca);
  for (const policy of Object.values(config.authentication_policies)) {
    policy.authentication_cas = policy.authentication_cas.map(abs);
    policy.pinned_certificates = policy.pinned_certificates.map(abs);
    policy.downstream_ra_cas = policy.downstream_ra_cas.map(abs);
    policy.renewal_cas = policy.renewal_cas.map(abs);
    policy.revocation.crl_files = policy.revocation.crl_files.map(abs);
  }
  for (const profile of Object.values(config.profiles)) {
    if (profile.local_ca) {
      profile.local_ca.certificate = abs(profile.local_ca.certificate);
      profile.local_ca.key = abs(profile.local_ca.key);
      profile.local_ca.chain = profile.local_ca.chain.map(abs);
    }
    const est = profile.est;
    if (est) {
      for (const key of ['ra_certificate', 'ra_key', 'ra_pkcs12'] as const) if (est[key] !== undefined) est[key] = abs(est[key]);
      est.trust_anchors = est.trust_anchors.map(abs);
      for (const source of [est.passcode, est.ra_pkcs12_passphrase]) if (source?.file !== undefined) source.file = abs(source.file);
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
