import { expect } from 'chai';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { CLI } from '../helpers/admin-cli.js';
import { editConfig, editProfile } from '../helpers/config.js';
import { run, type RunResult } from '../helpers/run.js';

type Json = Record<string, unknown>;

/**
 * check-config as the user est-ra runs as. Tests run as root, who reads a
 * mode-000 file anyway: as root, the command runs as `nobody` (setpriv), for
 * whom such a file is honestly unreadable (EACCES), as it is for est-ra's own user.
 */
function checkConfig(file: string, ...args: string[]): Promise<RunResult> {
  if (process.getuid?.() !== 0) return run(process.execPath, [CLI, 'check-config', '--config', file, ...args]);
  return run('setpriv', [...AS_NOBODY, process.execPath, nobodysCli, 'check-config', '--config', file, ...args]);
}

const AS_NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
const CHECKOUT = join(CLI, '..', '..', '..', '..');
/** The program as `nobody` can run it: the checkout itself, or a linked copy when the checkout is in a folder only root may enter (a clone made in `mktemp -d`). */
let nobodysCli = CLI;
let linkedCopy: string | undefined;

async function programNobodyCanRun(): Promise<void> {
  if (process.getuid?.() !== 0 || (await run('setpriv', [...AS_NOBODY, 'test', '-r', CLI])).code === 0) return;
  linkedCopy = mkdtempSync(join(tmpdir(), 'est-ra-as-nobody-'));
  chmodSync(linkedCopy, 0o755);
  for (const part of ['dist', 'node_modules', 'package.json']) {
    // Hard links where the file system allows (instant), a copy where it does not.
    if ((await run('cp', ['-al', join(CHECKOUT, part), linkedCopy])).code !== 0) await run('cp', ['-a', join(CHECKOUT, part), linkedCopy]);
  }
  nobodysCli = join(linkedCopy, relative(CHECKOUT, CLI));
}

describe('est-ra check-config reports every problem at once', () => {
  let dir: string;
  let config: string;

  before(async () => {
    await programNobodyCanRun();
    dir = mkdtempSync(join(tmpdir(), 'est-ra-check-config-'));
    await run(process.execPath, [CLI, 'init', '--state-dir', dir]);
    config = join(dir, 'config.yaml');
    // Readable and writable for the user check-config runs as (nobody), as /etc/est-ra is for est-ra's.
    await run('chmod', ['-R', 'a+rwX', dir]);
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
    if (linkedCopy) rmSync(linkedCopy, { recursive: true, force: true });
  });

  it('fail one file with five different mistakes: the output names all five, exit 1', async () => {
    const unreadable = join(dir, 'pki', 'bootstrap-ca.crt');
    writeFileSync(unreadable, readFileSync(join(dir, 'pki', 'root-ca.crt')));
    chmodSync(unreadable, 0o000);
    let text = readFileSync(config, 'utf8');
    text = editConfig(text, (c) => {
      const policy = (c.authentication_policies as Record<string, Json>).default!;
      delete policy.enable_username_for_passcode;
      policy.enable_username_for_pascode = true; // 1. an unknown key close to a known one
      policy.authentication_cas = [unreadable]; // 2. a file the user cannot read
    });
    text = editProfile(text, 'default', (p) => {
      (p.validity as Json).duration_value = 'one'; // 3. a wrong type
      (p.local_ca as Json).key = 'pki/issuing-ca.pem'; // 4. a file that does not exist
      p.allowed_ip_addresses = ['10.1.0.0/16', '10.0.0.5/20']; // 5. a bad allowlist entry
    });
    const bad = join(dir, 'five-mistakes.yaml');
    writeFileSync(bad, text);
    chmodSync(bad, 0o644);

    const result = await checkConfig(bad);
    expect(result.code, result.stdout + result.stderr).to.equal(1);
    const lines = result.stdout.split('\n');
    const expected = [
      'authentication_policies.default.enable_username_for_pascode: unknown setting; did you mean enable_username_for_passcode?',
      `authentication_policies.default.authentication_cas.0: cannot read ${unreadable}: EACCES (permission denied) as user ${process.getuid?.() === 0 ? 'nobody' : ''}`,
      'profiles.default.validity.duration_value: must be a positive integer',
      `profiles.default.local_ca.key: cannot read ${join(dir, 'pki', 'issuing-ca.pem')}: ENOENT (no such file or directory) as user`,
      "profiles.default.allowed_ip_addresses.1: '10.0.0.5/20': host bits set: did you mean 10.0.0.0/20 or the range 10.0.0.5-10.0.0.20?",
    ];
    for (const line of expected)
      expect(
        lines.some((l) => l.startsWith(line)),
        `${line}\nin\n${result.stdout}`,
      ).to.equal(true);
    expect(result.stdout).to.contain(`${bad}: 5 error(s)`);
    expect(result.stderr).to.equal('');

    const [json] = (await checkConfig(bad, '--json')).stdout.split('\n').map((l) => (l ? (JSON.parse(l) as Json) : undefined));
    expect(json).to.include({ ok: false, config_file: bad });
    const findings = json!.findings as { severity: string; text: string; line?: number }[];
    expect(findings).to.have.length(5);
    const typo = findings.find((f) => f.text.includes('enable_username_for_pascode'));
    expect(typo?.line).to.equal(text.split('\n').findIndex((l) => l.includes('enable_username_for_pascode')) + 1);
  });

  it('fail a YAML syntax error is named by line and column', async () => {
    const file = join(dir, 'syntax.yaml');
    writeFileSync(file, 'listen:\n  host: 127.0.0.1\n  port: [8443\ntls: {}\n');
    chmodSync(file, 0o644);
    const result = await checkConfig(file);
    expect(result.code).to.equal(1);
    expect(result.stdout).to.match(/^YAML: line \d+, column \d+: /m);
  });

  it('ok an unset environment variable secret is a warning: exit 0', async () => {
    const upstream = editProfile(readFileSync(config, 'utf8'), 'default', (p) => {
      p.upstream = 'est';
      delete p.local_ca;
      p.est = {
        url: 'https://clientauth.demo.one.digicert.com/.well-known/est/devicetrustmanager/IOT_x/device-group/g',
        ra_certificate: 'pki/server.crt',
        ra_key: 'pki/server.key',
        trust_anchors: ['pki/root-ca.crt'],
        passcode: { env: 'EST_RA_CHECK_CONFIG_UNSET_PASSCODE' },
      };
    });
    const file = join(dir, 'upstream.yaml');
    writeFileSync(file, upstream);
    chmodSync(file, 0o644);
    const result = await checkConfig(file);
    expect(result.code, result.stdout).to.equal(0);
    expect(result.stdout).to.contain(
      'warning: profiles.default.est.passcode.env: environment variable EST_RA_CHECK_CONFIG_UNSET_PASSCODE is not set here; est-ra serve needs it in its environment',
    );
    expect(result.stdout).to.contain(': OK (1 profile(s)), 1 warning(s)');
  });

  it('ok a load-balancer block wider than 256 addresses in listen.proxy_protocol.from is a warning; the balancers named singly are not', async () => {
    const file = join(dir, 'proxy.yaml');
    writeFileSync(
      file,
      editConfig(readFileSync(config, 'utf8'), (c) => {
        (c.listen as Json).proxy_protocol = { from: ['10.0.0.5', '10.0.9.0/28', '10.1.0.0/16', '192.168.7.0/255', '*'] };
      }),
    );
    chmodSync(file, 0o644);
    const result = await checkConfig(file);
    expect(result.code, result.stdout).to.equal(0);
    const warnings = result.stdout.split('\n').filter((line) => line.startsWith('warning: listen.proxy_protocol.from'));
    expect(warnings).to.deep.equal([
      "warning: listen.proxy_protocol.from: '10.1.0.0/16' takes PROXY headers from blocks of up to 65536 addresses; any host there can claim any device's address and pass the address allowlists: name the load balancers themselves",
      "warning: listen.proxy_protocol.from: '*' takes PROXY headers from blocks of up to 2^128 addresses; any host there can claim any device's address and pass the address allowlists: name the load balancers themselves",
    ]);
    expect(result.stdout).to.contain(': OK (1 profile(s)), 2 warning(s)');
  });
});
