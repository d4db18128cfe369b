import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { run, sh } from '../helpers/run.js';
import { freePort } from '../helpers/net.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Starts `est-ra demo` as a newcomer would and collects what it prints until it says how to stop. */
function startDemo(cwd: string, port: number): Promise<{ child: ChildProcess; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'demo', '--port', String(port)], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Press Ctrl-C to stop.')) resolve({ child, output });
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('exit', (code) => reject(new Error(`est-ra demo exited ${code}: ${output}`)));
  });
}

describe('the newcomer path: est-ra demo, then the printed curl + openssl lines', () => {
  let cwd: string;
  let child: ChildProcess | undefined;
  before(() => {
    cwd = mkdtempSync(join(tmpdir(), 'est-ra-demo-'));
  });
  after(() => {
    child?.kill('SIGTERM');
    rmSync(cwd, { recursive: true, force: true });
  });

  it('ok the printed commands enroll and re-enroll, and openssl verify accepts both certificates', async () => {
    const demo = await startDemo(cwd, await freePort());
    child = demo.child;
    const printed = demo.output.slice(demo.output.indexOf('# 1.'), demo.output.indexOf('Press Ctrl-C'));
    const commands = printed.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
    expect(commands).to.have.length(10);
    writeFileSync(join(cwd, 'commands.sh'), commands.join('\n'));
    const result = await sh('bash -euo pipefail commands.sh', cwd);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.equal('device.crt: OK\nrenewed.crt: OK\n');
  });

  it('ok a second demo in the same state directory prints a new working passcode', async () => {
    child?.kill('SIGTERM');
    await new Promise((resolve) => child?.once('exit', resolve));
    const demo = await startDemo(cwd, await freePort());
    child = demo.child;
    const enroll = demo.output.split('\n').find((line) => line.includes('/simpleenroll'));
    expect(enroll).to.be.a('string');
    const result = await sh(`${enroll ?? ''} && echo enrolled`, cwd);
    expect(result.stdout.trim(), `${enroll ?? ''}\n${result.stderr}`).to.equal('enrolled');
  });

  it('ok stops cleanly on SIGTERM', async () => {
    child?.kill('SIGTERM');
    const code = await new Promise((resolve) => child?.once('exit', resolve));
    child = undefined;
    expect(code).to.equal(0);
  });
});

describe('est-ra check-config', () => {
  it('fail names the bad field and exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'est-ra-check-'));
    try {
      await run(process.execPath, [CLI, 'init', '--state-dir', dir]);
      const { readFileSync } = await import('node:fs');
      const file = join(dir, 'config.yaml');
      expect((await run(process.execPath, [CLI, 'check-config', '--config', file])).stdout).to.match(/OK \(1 profile\(s\)\)/);
      writeFileSync(file, readFileSync(file, 'utf8').replace('duration_value: 1', 'duration_value: 0'));
      const result = await run(process.execPath, [CLI, 'check-config', '--config', file]);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.contain('profiles.default.validity.duration_value: must be a positive integer');
      expect(result.stderr).not.to.match(/at .*\.js:\d+/);
      writeFileSync(file, readFileSync(file, 'utf8').replace('duration_value: 0', 'duration_value: 1'));
      rmSync(join(dir, 'pki', 'issuing-ca.key'));
      const missing = await run(process.execPath, [CLI, 'check-config', '--config', file]);
      expect(missing.code).to.equal(2);
      expect(missing.stderr).to.contain(`profiles.default.local_ca.key: cannot read ${join(dir, 'pki', 'issuing-ca.key')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
