import { accessSync, constants, readFileSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { ZodIssue } from 'zod';
import { configSchema, type Config } from './schema.js';

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

/**
 * Reads, validates and freezes the YAML configuration, reporting all problems
 * at once (`profiles.demo.validity.duration_value: must be a positive integer`).
 */
export function loadConfig(file: string): LoadedConfig {
  let path = resolve(file);
  let text: string;
  try {
    // Through a symlink (/etc/est-ra/config.yaml -> /var/lib/est-ra/config.yaml)
    // relative paths stay relative to the real file, beside its pki/ folder.
    path = realpathSync(path);
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(path, [`cannot read: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`]);
  }
  const config = parseConfig(text, path);
  const problems = unreadableFiles(config);
  if (problems.length > 0) throw new ConfigError(path, problems);
  return config;
}

/** Every file the configuration names must be readable now, not at the first request that needs it. */
function unreadableFiles(config: LoadedConfig): string[] {
  const files: [string, string | undefined][] = [
    ['tls.certificate', config.tls.certificate],
    ['tls.key', config.tls.key],
  ];
  for (const [name, policy] of Object.entries(config.authentication_policies)) {
    policy.authentication_cas.forEach((file, i) => files.push([`authentication_policies.${name}.authentication_cas.${i}`, file]));
    policy.pinned_certificates.forEach((file, i) => files.push([`authentication_policies.${name}.pinned_certificates.${i}`, file]));
    policy.downstream_ra_cas.forEach((file, i) => files.push([`authentication_policies.${name}.downstream_ra_cas.${i}`, file]));
    policy.renewal_cas.forEach((file, i) => files.push([`authentication_policies.${name}.renewal_cas.${i}`, file]));
    policy.revocation.crl_files.forEach((file, i) => files.push([`authentication_policies.${name}.revocation.crl_files.${i}`, file]));
  }
  for (const [name, profile] of Object.entries(config.profiles)) {
    const at = `profiles.${name}`;
    if (profile.local_ca) {
      files.push([`${at}.local_ca.certificate`, profile.local_ca.certificate], [`${at}.local_ca.key`, profile.local_ca.key]);
      profile.local_ca.chain.forEach((file, i) => files.push([`${at}.local_ca.chain.${i}`, file]));
    }
    const est = profile.est;
    if (est) {
      files.push(
        [`${at}.est.ra_certificate`, est.ra_certificate],
        [`${at}.est.ra_key`, est.ra_key],
        [`${at}.est.ra_pkcs12`, est.ra_pkcs12],
        [`${at}.est.passcode.file`, est.passcode?.file],
        [`${at}.est.ra_pkcs12_passphrase.file`, est.ra_pkcs12_passphrase?.file],
      );
      est.trust_anchors.forEach((file, i) => files.push([`${at}.est.trust_anchors.${i}`, file]));
    }
  }
  const problems = files.flatMap(([setting, file]) => (file === undefined || accessible(file, constants.R_OK) ? [] : [`${setting}: cannot read ${file}`]));
  const { sqlite, postgres } = config.store;
  if (sqlite && !accessible(dirname(sqlite.path), constants.W_OK)) problems.push(`store.sqlite.path: cannot write in ${dirname(sqlite.path)}`);
  if (postgres?.password?.file !== undefined && !accessible(postgres.password.file, constants.R_OK))
    problems.push(`store.postgres.password.file: cannot read ${postgres.password.file}`);
  if (postgres?.ssl?.ca !== undefined && !accessible(postgres.ssl.ca, constants.R_OK)) problems.push(`store.postgres.ssl.ca: cannot read ${postgres.ssl.ca}`);
  return problems;
}

function accessible(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** Validates configuration text; `path` names it in errors and anchors relative file paths. */
export function parseConfig(text: string, path: string): LoadedConfig {
  const document = parseDocument(text, { prettyErrors: false });
  if (document.errors.length > 0) {
    throw new ConfigError(
      path,
      document.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`),
    );
  }
  const parsed = configSchema.safeParse(document.toJS() ?? {});
  if (!parsed.success) throw new ConfigError(path, parsed.error.issues.flatMap(describeIssue));
  const config = parsed.data;
  const problems = crossFieldProblems(config);
  if (problems.length > 0) throw new ConfigError(path, problems);
  resolvePaths(config, dirname(path));
  return deepFreeze({ ...config, configFile: path });
}

const TYPE_NAMES: Partial<Record<string, string>> = {
  object: 'a mapping of settings (key: value lines)',
  array: 'a list',
  string: 'text',
  number: 'a number',
  boolean: 'true or false',
};

function describeIssue(issue: ZodIssue): string[] {
  const at = issue.path.join('.') || '(top level)';
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${issue.path.concat(key).join('.')}: unknown setting`);
  if (issue.code === 'invalid_type' && issue.received === 'undefined') return [`${at}: is required`];
  // zod's own wording ("Expected object, received string") where the schema sets none of ours.
  if (issue.code === 'invalid_type' && issue.message.startsWith('Expected ')) return [`${at}: must be ${TYPE_NAMES[issue.expected] ?? issue.expected}`];
  return [`${at}: ${issue.message}`];
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
