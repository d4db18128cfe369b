import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { mustRun, run, sh } from '../helpers/run.js';
import { freePort } from '../helpers/net.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Starts `est-ra demo` as a newcomer would (its state under XDG_STATE_HOME) and collects what it prints until it says how to stop. */
function startDemo(cwd: string, stateHome: string, port: number): Promise<{ child: ChildProcess; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'demo', '--port', String(port)], {
      cwd,
      env: { ...process.env, XDG_STATE_HOME: stateHome },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Press Ctrl-C to stop')) resolve({ child, output });
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('exit', (code) => reject(new Error(`est-ra demo exited ${code}: ${output}`)));
  });
}

/** The lines a newcomer pastes: from the `cd` to the end, without comments. */
function printedCommands(output: string): string[] {
  const printed = output.slice(output.indexOf('\ncd '), output.indexOf('Press Ctrl-C'));
  return printed.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
}

describe('the newcomer path: est-ra demo, then the printed curl, openssl and strongSwan lines', function () {
  this.timeout(60_000);
  /** Where the newcomer runs the demo: the clone; nothing may land there. */
  let clone: string;
  let stateHome: string;
  let child: ChildProcess | undefined;
  let firstPasscode: string;
  const stateDir = (): string => join(stateHome, 'est-ra-demo');
  before(() => {
    clone = mkdtempSync(join(tmpdir(), 'est-ra-clone-'));
    stateHome = mkdtempSync(join(tmpdir(), 'est-ra-state-'));
  });
  after(() => {
    child?.kill('SIGTERM');
    rmSync(clone, { recursive: true, force: true });
    rmSync(stateHome, { recursive: true, force: true });
  });

  it('ok the printed commands enroll, re-enroll and enroll with pki, and openssl verify accepts all three; nothing lands in the clone', async () => {
    const demo = await startDemo(clone, stateHome, await freePort());
    child = demo.child;
    firstPasscode = /^Demo passcode .*: (\S+)$/m.exec(demo.output)![1]!;
    const commands = printedCommands(demo.output);
    expect(commands[0]).to.equal(`cd ${join(stateDir(), 'client')}`);
    expect(commands).to.have.length(14);
    expect(commands.filter((c) => c.startsWith('pki --est'))).to.have.length(1);
    // Run as pasted: from the clone, in one shell (the cd carries over).
    writeFileSync(join(stateHome, 'commands.sh'), commands.join('\n'));
    const result = await sh(`bash -euo pipefail ${join(stateHome, 'commands.sh')}`, clone);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.equal('device.crt: OK\nrenewed.crt: OK\nsw.crt: OK\n');
    // pki itself judged the issued certificate against the two --cacert files.
    expect(result.stderr).to.contain('Issued certificate is trusted');
    expect(readdirSync(clone)).to.deep.equal([]);
  });

  it('ok every PEM file the demo wrote ends with a newline, so cat makes a bundle', async () => {
    const pki = join(stateDir(), 'pki');
    const files = [...readdirSync(pki).map((f) => join(pki, f)), ...readdirSync(join(pki, 'offline')).map((f) => join(pki, 'offline', f))].filter(
      (f) => f.endsWith('.crt') || f.endsWith('.key'),
    );
    expect(files.length).to.be.greaterThan(4);
    for (const file of files) expect(readFileSync(file, 'utf8').endsWith('-----\n'), file).to.equal(true);
    const bundle = join(stateHome, 'bundle.pem');
    writeFileSync(bundle, readFileSync(join(pki, 'issuing-ca.crt'), 'utf8') + readFileSync(join(pki, 'root-ca.crt'), 'utf8'));
    const certs = await sh(`openssl crl2pkcs7 -nocrl -certfile ${bundle} | openssl pkcs7 -print_certs -noout | grep -c subject=`, stateHome);
    expect(certs.stdout.trim()).to.equal('2');
  });

  it('ok SIGHUP reloads the demo: it says so and keeps serving', async () => {
    const said = new Promise<string>((resolve) => {
      let text = '';
      child!.stdout!.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        if (text.includes('configuration reloaded')) resolve(text);
      });
    });
    child!.kill('SIGHUP');
    expect(await said).to.match(/"message":"configuration reloaded"/);
    expect(child!.exitCode).to.equal(null);
  });

  it('ok a second start prints a new working passcode and disables the first: one demo passcode works at a time', async () => {
    child?.kill('SIGTERM');
    await new Promise((resolve) => child?.once('exit', resolve));
    const demo = await startDemo(clone, stateHome, await freePort());
    child = demo.child;
    const commands = printedCommands(demo.output);
    const enroll = commands.find((line) => line.includes('/simpleenroll'))!;
    const result = await sh(`${commands[0]!} && ${enroll.replace(/device\.p7/, 'second.p7')} && echo enrolled`, clone);
    expect(result.stdout.trim(), `${enroll}\n${result.stderr}`).to.equal('enrolled');
    const old = await sh(`${commands[0]!} && ${enroll.replace(/--user ":\S+"/, `--user ":${firstPasscode}"`)}`, clone);
    expect(old.code).to.not.equal(0);
    expect(old.stdout + old.stderr).to.contain('401');
    const passcodes = (await mustRun(process.execPath, [CLI, 'passcodes', 'list', '--json', '--config', join(stateDir(), 'config.yaml')]))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { status: string });
    expect(passcodes.map((p) => p.status).sort()).to.deep.equal(['disabled', 'enabled']);
  });

  it('ok stops cleanly on SIGTERM', async () => {
    child?.kill('SIGTERM');
    const code = await new Promise((resolve) => child?.once('exit', resolve));
    child = undefined;
    expect(code).to.equal(0);
  });
});

describe('est-ra check-config', () => {
  it('fail names the bad field and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'est-ra-check-'));
    try {
      await run(process.execPath, [CLI, 'init', '--state-dir', dir]);
      const file = join(dir, 'config.yaml');
      expect((await run(process.execPath, [CLI, 'check-config', '--config', file])).stdout).to.match(/OK \(1 profile\(s\)\)/);
      writeFileSync(file, readFileSync(file, 'utf8').replace('duration_value: 1', 'duration_value: 0'));
      const result = await run(process.execPath, [CLI, 'check-config', '--config', file]);
      expect(result.code).to.equal(1);
      expect(result.stdout).to.contain('profiles.default.validity.duration_value: must be a positive integer');
      expect(result.stdout + result.stderr).not.to.match(/at .*\.js:\d+/);
      writeFileSync(file, readFileSync(file, 'utf8').replace('duration_value: 0', 'duration_value: 1'));
      rmSync(join(dir, 'pki', 'issuing-ca.key'));
      const missing = await run(process.execPath, [CLI, 'check-config', '--config', file]);
      expect(missing.code).to.equal(1);
      expect(missing.stdout).to.contain(`profiles.default.local_ca.key: cannot read ${join(dir, 'pki', 'issuing-ca.key')}: ENOENT`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('#12 - ok rsa_1024 named in allowed_key_types is valid with a warning (exit 0)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'est-ra-check-'));
    try {
      await run(process.execPath, [CLI, 'init', '--state-dir', dir]);
      const file = join(dir, 'config.yaml');
      expect((await run(process.execPath, [CLI, 'check-config', '--config', file])).stdout).to.not.include('warning');
      writeFileSync(file, readFileSync(file, 'utf8').replace(/allowed_key_types: \[/, 'allowed_key_types: [rsa_1024, MLDSA-65, SLHDSA-SHA2-128s, '));
      const result = await run(process.execPath, [CLI, 'check-config', '--config', file]);
      expect(result.code).to.equal(0);
      expect(result.stdout).to.include(
        'warning: profiles.default.allowed_key_types: rsa_1024 is allowed; 1024-bit RSA keys are too weak (NIST SP 800-131A disallows them since 2013)\n',
      );
      expect(result.stdout).to.match(/OK \(1 profile\(s\)\), 1 warning\(s\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
