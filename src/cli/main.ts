#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50
// The young generation is capped at 4 MB semi-spaces (V8's default is 16 MB):
// under enrollment load the default grows to ~34 MB of short-lived garbage.
// npm run bench measured peak RSS 137 MB with 4 MB against 147-166 MB with
// 8 MB, at the same throughput within this VM's noise. The old generation
// grows by 1.5x instead of V8's up to 4x before its next full collection:
// peak RSS 130-132 MB against 150-154 MB at c32, with no measurable CPU cost
// (--optimize-for-size gave 121 MB but cost ~15 % more CPU per enrollment).
// systemd and `npx est-ra` run this file through its shebang;
// `node dist/src/cli/main.js` runs without these settings.
import { Command, InvalidArgumentError } from 'commander';
import { SAN_TYPES, SUBJECT_ATTRIBUTE_NAMES } from '../pki/names.js';
import { checkConfigFile, ConfigError, loadConfig } from '../config/load.js';
import type { RunningServer } from '../server.js';
import { createPasscode, passcodeStatus, rotatePasscode } from '../auth/passcode.js';
import { LOG_EVENT } from '../ops/log-events.js';
import { EstError } from '../errors.js';
import { EST_RA_VERSION } from '../version.js';
import { DEFAULT_NAME, initStateDir } from './init.js';
import { defaultDemoStateDir, runDemo } from './demo.js';
import { addAdminCommands, addStoreMaintenanceCommands } from './admin.js';
import { addApprovalCommands } from './approvals.js';
import { parseAdminTime } from './local-time.js';
import { endQuietlyOnClosedPipe, print, printRows } from './output.js';
import { withStore } from './with-store.js';
import { simulate, type SimulateOptions } from './simulate.js';
import { describeStore, storeLocationOf } from '../config/store-location.js';
import { migrationStatus, openStore } from '../store/open.js';
import type { PasscodeRecord } from '../store/types.js';

function portNumber(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return port;
}

/** Stops cleanly on SIGTERM (systemd stop) and SIGINT (Ctrl-C): requests in flight are answered first. */
function stopOnSignals(server: RunningServer): void {
  const stop = (signal: string): void => {
    server.logger.info(LOG_EVENT.stopping, { signal });
    server.close({ drain: true }).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/**
 * Reloads the configuration file on SIGHUP (systemctl reload): checked whole
 * first, applied only when it builds, one reload at a time. A bad file is
 * logged with every problem and the running configuration stays.
 */
function reloadOnHangup(server: RunningServer, file: string): void {
  let reloading: Promise<void> = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      try {
        const config = loadConfig(file);
        const { restartNeeded } = await server.reload(config);
        const profiles = Object.keys(config.profiles);
        server.logger.info(LOG_EVENT.reloaded, { profiles, ...(restartNeeded.length > 0 ? { restart_needed: restartNeeded } : {}) });
      } catch (err) {
        server.logger.error(LOG_EVENT.reloadFailed, { error: err instanceof Error ? err.message : String(err) });
      }
    });
  });
}

const program = new Command('est-ra').description('On-premises EST (RFC 7030) registration authority').version(EST_RA_VERSION).showHelpAfterError();
// Commands that print for a reader end quietly when it goes away; the long-running ones (serve, demo) keep
// Node's behaviour: a log pipe that breaks under systemd is a failure to restart from, not a reason to exit 0.
program.hook('preAction', (_program, action) => {
  if (action.name() !== 'serve' && action.name() !== 'demo') endQuietlyOnClosedPipe();
});

program
  .command('init')
  .description(
    'create a state directory: config.yaml, the SQLite store, a TLS server certificate and the issuing CA (imported, or created under a new root whose key is written apart for offline storage); no passcode unless --demo-passcode',
  )
  .requiredOption('--state-dir <dir>', 'directory for config.yaml, pki/ and est-ra.db')
  .option('--port <n>', 'port written to config.yaml', portNumber, 8443)
  .option('--host <address>', 'listen address written to config.yaml (0.0.0.0: every address)', '127.0.0.1')
  .option('--server-name <name...>', 'extra TLS server names: ra.plant.local, 10.1.2.3 (a bare IP address is an IP name), or typed DNS:name, IP:address')
  .option('--policy-name <name>', 'the authentication policy config.yaml defines', DEFAULT_NAME)
  .option('--profile-name <name>', 'the profile config.yaml defines', DEFAULT_NAME)
  .option('--ca-name <name>', "subject CN of the CAs init creates: '<name> root CA', '<name> issuing CA'", 'est-ra local')
  .option('--issuing-ca <cert.pem>', 'import this issuing CA instead of creating a root on this host (with --issuing-ca-key and --ca-chain)')
  .option('--issuing-ca-key <key.pem>', "the imported issuing CA's private key (unencrypted PEM)")
  .option('--ca-chain <file...>', 'PEM certificates above the imported issuing CA, up to and including its root')
  .option('--demo-passcode', 'also create one unlimited, never-expiring passcode (demos and tests only)')
  .option('--json', 'one JSON object: the files written, the names, the demo passcode if any')
  .action(
    async (options: {
      stateDir: string;
      port: number;
      host: string;
      serverName?: string[];
      policyName: string;
      profileName: string;
      caName: string;
      issuingCa?: string;
      issuingCaKey?: string;
      caChain?: string[];
      demoPasscode?: boolean;
      json?: boolean;
    }) => {
      if ((options.issuingCa === undefined) !== (options.issuingCaKey === undefined))
        throw new InvalidArgumentError('--issuing-ca and --issuing-ca-key go together');
      if (options.caChain && !options.issuingCa) throw new InvalidArgumentError('--ca-chain is the chain of an imported --issuing-ca');
      const result = await initStateDir({
        stateDir: options.stateDir,
        port: options.port,
        host: options.host,
        serverNames: options.serverName ?? [],
        policyName: options.policyName,
        profileName: options.profileName,
        caName: options.caName,
        ...(options.issuingCa ? { issuingCa: { certificateFile: options.issuingCa, keyFile: options.issuingCaKey!, chainFiles: options.caChain ?? [] } } : {}),
        demoPasscode: options.demoPasscode === true,
        now: new Date(),
      });
      if (options.json) {
        print(
          JSON.stringify({
            config_file: result.configFile,
            root_ca_file: result.rootCaFile,
            issuing_ca_file: result.issuingCaFile,
            offline_root_key_file: result.offlineRootKeyFile ?? null,
            policy: result.policyName,
            profile: result.profileName,
            demo_passcode: result.demoPasscode ?? null,
          }),
        );
        return;
      }
      print(`Wrote ${result.configFile} (authentication policy ${result.policyName}, profile ${result.profileName})`);
      print(`Trust anchor for clients: ${result.rootCaFile}`);
      print(`Issuing CA: ${result.issuingCaFile}`);
      if (result.offlineRootKeyFile) {
        print(`Root CA private key: ${result.offlineRootKeyFile}`);
        print('  est-ra never uses it. It belongs offline: copy it to offline storage (an encrypted USB key in a safe), then');
        print(`  delete it from this host (shred -u ${result.offlineRootKeyFile}). It is needed only to sign a new issuing CA.`);
      }
      if (result.demoPasscode) print(`Demo passcode (shown once, stored only as a hash): ${result.demoPasscode}`);
      else print(`No passcode yet: est-ra passcodes create --config ${result.configFile} --policy ${result.policyName} --max-uses 50 --expires 2027-03-31`);
      print(`Start with: est-ra serve --config ${result.configFile}`);
    },
  );

program
  .command('serve')
  .description('serve EST over HTTPS')
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .action(async (options: { config: string }) => {
    // Loaded here, not at the top: the admin commands do not need the HTTP server (~0.2 s of imports per call).
    const { startServer } = await import('../server.js');
    const server = await startServer(loadConfig(options.config));
    stopOnSignals(server);
    reloadOnHangup(server, options.config);
  });

program
  .command('demo')
  .description('init if needed, serve on https://127.0.0.1:<port>, and print how to enroll with curl, openssl and strongSwan pki')
  .option('--state-dir <dir>', `state directory (default: $XDG_STATE_HOME/est-ra-demo, here ${defaultDemoStateDir()})`)
  .option('--port <n>', 'port', portNumber, 8443)
  .action(async (options: { stateDir?: string; port: number }) => {
    const demo = await runDemo(options, print);
    stopOnSignals(demo.server);
    reloadOnHangup(demo.server, demo.configFile);
  });

program
  .command('check-config')
  .description('validate a configuration file and report every problem at once: errors (exit 1) and warnings (exit 0)')
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .option('--json', 'one JSON object: config_file, ok, profiles, findings [{severity, text, line}]')
  .action((options: { config: string; json?: boolean }) => {
    const check = checkConfigFile(options.config);
    const errors = check.findings.filter((f) => f.severity === 'error').length;
    const warnings = check.findings.length - errors;
    const profiles = Object.keys(check.config?.profiles ?? {});
    if (options.json) {
      print(JSON.stringify({ config_file: check.file, ok: errors === 0, profiles, findings: check.findings }));
    } else {
      for (const finding of check.findings) print(`${finding.severity === 'warning' ? 'warning: ' : ''}${finding.text}`);
      const counts = [errors > 0 ? `${errors} error(s)` : '', warnings > 0 ? `${warnings} warning(s)` : ''].filter((c) => c !== '').join(', ');
      print(errors === 0 ? `${check.file}: OK (${profiles.length} profile(s))${counts ? `, ${counts}` : ''}` : `${check.file}: ${counts}`);
    }
    if (errors > 0) process.exitCode = 1;
  });

program
  .command('simulate')
  .description(
    'dry run of one enrollment: print each decision in order (allowlist, authentication, hours, key type, subject, SAN, signature, renewal) and the certificate it would yield; nothing recorded or issued; exit 0 issued, 1 refused',
  )
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .requiredOption('--profile <name>', 'the profile, by name')
  .requiredOption('--csr <file>', "the device's CSR: PEM, DER or base64")
  .option('--peer <address>', "the device's address, for allowed_ip_addresses")
  .option('--at <time>', 'when: 2027-03-31 14:00 or 2027-03-31T14:00 in the configured time_zone, or ISO with Z or an offset (default: now)')
  .option('--cert <file>', 'simplereenroll with this certificate (PEM, then its chain) as the TLS client certificate')
  .option('--client-cert <file>', 'simpleenroll with this TLS client certificate (a bootstrap or manufacturer certificate, PEM, then its chain)')
  .option('--passcode-id <id>', 'as if authenticated by this passcode (passcodes list shows the ids)')
  .option('--json', 'one JSON object: operation, profile, at, outcome, steps [{step, outcome, detail}], refusal, certificate')
  .action(async (options: SimulateOptions) => {
    process.exitCode = await simulate(options, print);
  });

const passcodes = program.command('passcodes').description('manage the passcodes of authentication policies (secrets are shown once, stored only as hashes)');

function positiveCount(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1) throw new InvalidArgumentError('must be a whole number of uses, 1 or more');
  return count;
}

/** `--expires`: a bare date is the end of that day in the configured time zone; a past time is refused. */
function expiryTime(value: string, timeZone: string, now: Date): Date {
  const expires = parseAdminTime(value, timeZone, true);
  if (!expires)
    throw new InvalidArgumentError(`--expires ${value}: give a date (2027-03-31) or a time (2027-03-31T12:00, in ${timeZone}; or with Z or an offset)`);
  if (expires <= now) throw new InvalidArgumentError(`--expires ${value} is in the past (${expires.toISOString()}): give a future date`);
  return expires;
}

/** A passcode as `passcodes list --json` and `create --json` give it (never its hash). */
function passcodeJson(p: PasscodeRecord, now: Date): Record<string, unknown> {
  return {
    id: p.id,
    policy: p.policy,
    username: p.username ?? '',
    uses: `${p.uses}/${p.maxUses ?? '∞'}`,
    uses_count: p.uses,
    max_uses: p.maxUses,
    expires: p.expiresAt ?? 'never',
    expires_at: p.expiresAt,
    created_at: p.createdAt,
    status: passcodeStatus(p, now),
    description: p.description ?? '',
    registered_values: p.registeredValues,
  };
}

/** `--value common_name=sensor-17` (or subject.common_name=, san.dns_name=), collected per key. */
function registeredValue(text: string, collected: Record<string, string[]>): Record<string, string[]> {
  const match = /^([a-z_.]+)=(.+)$/.exec(text);
  const key = match?.[1]?.replace(/^subject\./, '');
  const valid = key !== undefined && ((SUBJECT_ATTRIBUTE_NAMES as readonly string[]).includes(key) || SAN_TYPES.some((type) => key === `san.${type}`));
  if (!valid) {
    throw new InvalidArgumentError(`must be key=value with a key among ${SUBJECT_ATTRIBUTE_NAMES.join(', ')}, ${SAN_TYPES.map((t) => `san.${t}`).join(', ')}`);
  }
  return { ...collected, [key]: [...(collected[key] ?? []), match![2]!] };
}

passcodes
  .command('create')
  .description('create a passcode and print it once')
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .requiredOption('--policy <name>', 'authentication policy')
  .option('--username <name>', 'username the device sends with it (with enable_username_for_passcode)')
  .option('--max-uses <n>', 'enrollments it may authenticate (DigiCert number_of_usage)', positiveCount)
  .option(
    '--expires <date>',
    "when it stops working: a date (2027-03-31) means the END of that day in the config's time_zone (default: this machine's), " +
      'a time (2027-03-31T12:00) that time there, or exact with Z or an offset; a date in the past is refused',
  )
  .option('--description <text>', 'what it is for')
  .option(
    '--value <key=value>',
    'a value registered with it, for profiles whose subject/san rules take user_supplied (repeatable): common_name=sensor-17, san.dns_name=sensor-17.line3.plant.local',
    registeredValue,
    {} as Record<string, string[]>,
  )
  .option('--json', 'one JSON object, the secret as passcode')
  .action(
    async (options: {
      config: string;
      policy: string;
      username?: string;
      maxUses?: number;
      expires?: string;
      description?: string;
      value: Record<string, string[]>;
      json?: boolean;
    }) => {
      await withStore(options.config, async ({ store, config, timeZone, now }) => {
        if (!(options.policy in config.authentication_policies)) throw new InvalidArgumentError(`no authentication policy named '${options.policy}'`);
        const { record, passcode } = await createPasscode(store, options.policy, {
          ...(options.username !== undefined ? { username: options.username } : {}),
          ...(options.description !== undefined ? { description: options.description } : {}),
          ...(options.maxUses !== undefined ? { maxUses: options.maxUses } : {}),
          ...(options.expires !== undefined ? { expiresAt: expiryTime(options.expires, timeZone, now) } : {}),
          registeredValues: options.value,
          now,
        });
        if (options.json) print(JSON.stringify({ ...passcodeJson(record, now), passcode }));
        else print(`Passcode ${record.id} for policy ${record.policy} (shown once): ${passcode}${record.expiresAt ? ` (expires ${record.expiresAt})` : ''}`);
      });
    },
  );

passcodes
  .command('list')
  .description('list passcodes with their uses and status (never the secrets)')
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .option('--policy <name>', 'only this authentication policy')
  .option('--json', 'one JSON object per line')
  .action(async (options: { config: string; policy?: string; json?: boolean }) => {
    await withStore(options.config, async ({ store, now }) => {
      printRows(
        await store.listPasscodes(options.policy),
        options.json,
        (p) => passcodeJson(p, now),
        (p) => ({
          id: p.id,
          policy: p.policy,
          username: p.username ?? '',
          uses: `${p.uses}/${p.maxUses ?? '∞'}`,
          expires: p.expiresAt ?? 'never',
          status: passcodeStatus(p, now),
          description: p.description ?? '',
        }),
      );
    });
  });

for (const [command, enabled] of [
  ['disable', false],
  ['enable', true],
] as const) {
  passcodes
    .command(command)
    .description(`${command} a passcode`)
    .requiredOption('--config <file>', 'configuration file (YAML)')
    .argument('<id>', 'passcode id, as passcodes list shows it')
    .option('--json', 'the passcode as passcodes list --json gives it')
    .action(async (id: string, options: { config: string; json?: boolean }) => {
      await withStore(options.config, async ({ store, now }) => {
        if (!(await store.setPasscodeEnabled(id, enabled))) throw new InvalidArgumentError(`no passcode ${id}`);
        const record = await store.getPasscode(id);
        if (options.json && record) print(JSON.stringify(passcodeJson(record, now)));
        else print(`Passcode ${id} ${command}d`);
      });
    });
}

passcodes
  .command('rotate')
  .description('give a passcode a new secret (limits and uses kept) and print it once')
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .argument('<id>', 'passcode id, as passcodes list shows it')
  .option('--json', 'one JSON object, the new secret as passcode')
  .action(async (id: string, options: { config: string; json?: boolean }) => {
    await withStore(options.config, async ({ store, now }) => {
      const passcode = await rotatePasscode(store, id);
      if (passcode === undefined) throw new InvalidArgumentError(`no passcode ${id}`);
      const record = await store.getPasscode(id);
      if (options.json && record) print(JSON.stringify({ ...passcodeJson(record, now), passcode }));
      else print(`Passcode ${id} rotated (shown once): ${passcode}`);
    });
  });

addAdminCommands(program);
addApprovalCommands(program);

const storeCommand = program.command('store').description('what the store holds');
storeCommand
  .command('stats')
  .description('rows and bytes: requests, refused, waiting, certificates, counted refusals, passcodes, file size')
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .option('--refusals <n>', 'also list the latest counted refusals (before authentication), one per address, code and hour', positiveCount)
  .option('--json', 'one JSON object: the counts, bytes, and the refusals asked for')
  .action(async (options: { config: string; refusals?: number; json?: boolean }) => {
    await withStore(options.config, async ({ store, config }) => {
      const stats = await store.stats();
      if (options.json) {
        const refusals = options.refusals ? await store.refusalCounts(options.refusals) : [];
        print(
          JSON.stringify({
            store: describeStore(config),
            retention_days: config.store.retention_days,
            ...stats,
            refusals: refusals.map((r) => ({
              hour: r.hour,
              peer_address: r.address,
              profile: r.profile,
              operation: r.operation,
              code: r.code,
              status: r.status,
              count: r.count,
              last_reason: r.lastReason,
            })),
          }),
        );
        return;
      }
      print(`store ${describeStore(config)}: ${(stats.bytes / 1024).toFixed(0)} KiB, retention ${config.store.retention_days} days`);
      print(
        `requests ${stats.requests} (refused ${stats.refused}, waiting ${stats.waiting}) · certificates ${stats.certificates} · passcodes ${stats.passcodes}`,
      );
      print(`refusals before authentication: ${stats.refusals_counted} counted in ${stats.refusal_rows} rows`);
      for (const r of options.refusals ? await store.refusalCounts(options.refusals) : []) {
        print(`  ${r.hour}h ${r.address} ${r.profile}/${r.operation} ${r.status} ${r.code} ×${r.count}: ${r.lastReason}`);
      }
    });
  });

addStoreMaintenanceCommands(storeCommand);

program
  .command('migrate')
  .description("bring the store's schema to this version (est-ra serve does it at start); --check only reports")
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .option('--check', 'change nothing: print the schema version, exit 1 when migrations are due or the store is newer than this est-ra')
  .option('--json', 'one JSON object: store, applied, known')
  .action(async (options: { config: string; check?: boolean; json?: boolean }) => {
    const config = loadConfig(options.config);
    const location = storeLocationOf(config);
    if (!options.check) await (await openStore(location)).close();
    const status = await migrationStatus(location);
    const store = describeStore(config);
    if (options.json) print(JSON.stringify({ store, applied: status.applied, known: status.known }));
    else if (status.applied === status.known) print(`store ${store}: schema version ${status.applied}, current`);
    else if (status.applied < status.known)
      print(
        `store ${store}: schema version ${status.applied} of ${status.known}, ${status.known - status.applied} migration(s) to apply (est-ra migrate, or est-ra serve at start)`,
      );
    else print(`store ${store}: schema version ${status.applied} is newer than this est-ra knows (${status.known}): upgrade est-ra`);
    if (status.applied !== status.known) process.exitCode = 1;
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  // A refusal's reason is written for devices; the admin also gets what caused it (the database's own message).
  const cause = err instanceof EstError && err.cause instanceof Error ? ` (${err.cause.message})` : '';
  process.stderr.write(`est-ra: ${err instanceof Error ? err.message : String(err)}${cause}\n`);
  process.exit(1);
});
