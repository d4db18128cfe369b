import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { makeRevocationCa, serialOf, type OcspResponder, type RevocationCa } from '../helpers/revocation-pki.js';
import { mustRun, run } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';

const HELPER_URL = new URL('../helpers/revocation-pki.js', import.meta.url).href;
const CRL_URL = 'http://127.0.0.1:9/crl/test-ca.crl';
const OCSP_URL = 'http://127.0.0.1:9/ocsp';

/** A process that exists and is not a zombie (a container's PID 1 may never reap orphans). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function gone(pid: number): Promise<true> {
  return eventually(() => (alive(pid) ? undefined : true), 10_000);
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** `openssl ocsp` as a client: the status it reports, and its whole output. */
async function ocspQuery(ca: RevocationCa, url: string, target: readonly string[]): Promise<{ status: string; output: string }> {
  const result = await run('openssl', ['ocsp', '-issuer', ca.caFile, ...target, '-url', url, '-CAfile', ca.caFile, '-resp_text']);
  const output = result.stdout + result.stderr;
  expect(result.code, output).to.equal(0);
  expect(output).to.include('Response verify OK');
  const status = /Cert Status: (\w+)/.exec(output);
  expect(status, output).to.not.equal(null);
  return { status: status![1]!, output };
}

async function crlTimes(pemFile: string): Promise<{ lastUpdate: number; nextUpdate: number }> {
  const out = await mustRun('openssl', ['crl', '-in', pemFile, '-noout', '-lastupdate', '-nextupdate']);
  const field = (name: string): number => Date.parse(new RegExp(`^${name}=(.*)$`, 'm').exec(out)![1]!);
  return { lastUpdate: field('lastUpdate'), nextUpdate: field('nextUpdate') };
}

describe('revocation PKI helper: openssl ca, CRLs and an openssl ocsp responder', () => {
  let tmp: string;
  let ca: RevocationCa;
  let responder: OcspResponder | undefined;
  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'est-ra-revocation-'));
    ca = await makeRevocationCa(join(tmp, 'ca'), { crlDistributionPoint: CRL_URL, ocspUrl: OCSP_URL });
  });
  after(async () => {
    await responder?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('ok the CA certificate is a self-signed P-256 CA for certificate and CRL signing', async () => {
    const text = await mustRun('openssl', ['x509', '-in', ca.caFile, '-noout', '-text']);
    expect(text).to.match(/Basic Constraints: critical\s+CA:TRUE/);
    expect(text).to.match(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).to.include('NIST CURVE: P-256');
    expect(await mustRun('openssl', ['verify', '-CAfile', ca.caFile, ca.caFile])).to.equal(`${ca.caFile}: OK\n`);
    const ocspText = await mustRun('openssl', ['x509', '-in', ca.ocspCertFile, '-noout', '-text']);
    expect(ocspText).to.match(/Extended Key Usage: \s*OCSP Signing/);
    expect(ocspText).to.include('OCSP No Check');
  });

  it('ok an issued certificate verifies against caFile and carries the CRL DP, the OCSP URL, clientAuth and CA:FALSE', async () => {
    const device = await ca.issue('device-1', { days: 7 });
    expect(await mustRun('openssl', ['verify', '-CAfile', ca.caFile, device.certFile])).to.equal(`${device.certFile}: OK\n`);
    const text = await mustRun('openssl', ['x509', '-in', device.certFile, '-noout', '-text']);
    expect(/CRL Distribution Points: \s*Full Name:\s+URI:(\S+)/.exec(text)![1]).to.equal(CRL_URL);
    expect(/Authority Information Access: \s*OCSP - URI:(\S+)/.exec(text)?.[1]).to.equal(OCSP_URL);
    expect(text).to.match(/Basic Constraints: critical\s+CA:FALSE/);
    expect(text).to.match(/Extended Key Usage: \s*TLS Web Client Authentication\n/);
    expect(text).to.include('Subject: CN = device-1');
    expect(text).to.include('NIST CURVE: P-256');
    const certPublicKey = await mustRun('openssl', ['x509', '-in', device.certFile, '-noout', '-pubkey']);
    expect(certPublicKey).to.equal(await mustRun('openssl', ['pkey', '-in', device.keyFile, '-pubout']));
    const dates = await mustRun('openssl', ['x509', '-in', device.certFile, '-noout', '-startdate', '-enddate']);
    const notAfter = Date.parse(/notAfter=(.*)/.exec(dates)![1]!);
    expect(notAfter - Date.now()).to.be.within(7 * 86_400_000 - 120_000, 7 * 86_400_000 + 120_000);
  });

  it('ok without URLs, certificates carry neither a CRL DP nor an AIA', async () => {
    const plain = await makeRevocationCa(join(tmp, 'plain'));
    const device = await plain.issue('plain-device');
    const text = await mustRun('openssl', ['x509', '-in', device.certFile, '-noout', '-text']);
    expect(text).to.not.include('CRL Distribution Points');
    expect(text).to.not.include('Authority Information Access');
    expect(text).to.include('TLS Web Client Authentication');
    expect(await run('openssl', ['verify', '-CAfile', ca.caFile, device.certFile]))
      .to.have.property('code')
      .that.not.equal(0);
  });

  it('ok serialOf is what openssl x509 -serial prints, lowercased, and index.txt lists it as valid', async () => {
    const device = await ca.issue('serial-check');
    const printed = await mustRun('openssl', ['x509', '-in', device.certFile, '-noout', '-serial']);
    expect(await serialOf(device.certFile)).to.equal(
      printed
        .trim()
        .replace(/^serial=/, '')
        .toLowerCase(),
    );
    expect(device.serial).to.equal(await serialOf(device.certFile));
    expect(device.serial).to.match(/^[0-9a-f]+$/);
    const line = readFileSync(ca.indexFile, 'utf8')
      .split('\n')
      .find((each) => each.endsWith('/CN=serial-check'));
    expect(line?.split('\t')[0]).to.equal('V');
    expect(line?.split('\t')[3]?.toLowerCase()).to.equal(device.serial);
  });

  it('ok concurrent issue() calls are serialized onto one database and get distinct serials', async () => {
    const devices = await Promise.all(['c1', 'c2', 'c3', 'c4'].map((name) => ca.issue(name)));
    expect(new Set(devices.map((each) => each.serial)).size).to.equal(4);
    for (const device of devices) expect(await mustRun('openssl', ['verify', '-CAfile', ca.caFile, device.certFile])).to.include(': OK');
  });

  it('ok openssl verify -crl_check: revoked after revoke + writeCrl, a good certificate OK; the DER file is the same CRL', async () => {
    const good = await ca.issue('crl-good');
    const bad = await ca.issue('crl-bad');
    await ca.revoke(bad.certFile, { reason: 'keyCompromise' });
    const crl = await ca.writeCrl({ hours: 6 });
    const verify = (cert: string) => run('openssl', ['verify', '-crl_check', '-CAfile', ca.caFile, '-CRLfile', crl.pemFile, cert]);
    const okResult = await verify(good.certFile);
    expect(okResult.code, okResult.stderr).to.equal(0);
    expect(okResult.stdout).to.equal(`${good.certFile}: OK\n`);
    const revoked = await verify(bad.certFile);
    expect(revoked.code).to.not.equal(0);
    expect(revoked.stdout + revoked.stderr).to.include('certificate revoked');

    const fromDer = await mustRun('openssl', ['crl', '-inform', 'DER', '-in', crl.derFile, '-outform', 'PEM']);
    expect(fromDer).to.equal(readFileSync(crl.pemFile, 'utf8'));
    const text = await mustRun('openssl', ['crl', '-in', crl.pemFile, '-noout', '-text']);
    expect(text).to.include(`Serial Number: ${bad.serial.toUpperCase()}`);
    expect(text).to.include('Key Compromise');
    expect(text).to.not.include(`Serial Number: ${good.serial.toUpperCase()}`);
    const { lastUpdate, nextUpdate } = await crlTimes(crl.pemFile);
    expect(nextUpdate - lastUpdate).to.equal(6 * 3_600_000);
    expect(Math.abs(lastUpdate - Date.now())).to.be.below(120_000);
    expect(readFileSync(join(ca.dir, 'crl.der'))).to.deep.equal(readFileSync(crl.derFile));
  });

  it('ok a stale CRL (nextUpdate already past) is one openssl verify calls expired', async () => {
    const good = await ca.issue('stale-check');
    const crl = await ca.writeCrl({ lastUpdateAgoHours: 3, hours: 1 });
    const { lastUpdate, nextUpdate } = await crlTimes(crl.pemFile);
    expect(Date.now() - nextUpdate).to.be.within(2 * 3_600_000 - 120_000, 2 * 3_600_000 + 120_000);
    expect(nextUpdate - lastUpdate).to.equal(3_600_000);
    // RFC 5280 §5.1.2.4: UTCTime through 2049, which openssl makes of the GeneralizedTime we pass.
    expect(await mustRun('openssl', ['asn1parse', '-in', crl.pemFile])).to.match(/UTCTIME\s+:\d{12}Z[\s\S]*UTCTIME\s+:\d{12}Z/);
    const result = await run('openssl', ['verify', '-crl_check', '-CAfile', ca.caFile, '-CRLfile', crl.pemFile, good.certFile]);
    expect(result.code).to.not.equal(0);
    expect(result.stdout + result.stderr).to.include('CRL has expired');
  });

  it('ok openssl ocsp reports good, revoked and unknown, each response signed by the delegated responder', async () => {
    const good = await ca.issue('ocsp-good');
    const bad = await ca.issue('ocsp-bad');
    await ca.revoke(bad.certFile);
    responder = await ca.startOcspResponder();
    expect(responder.url).to.equal(`http://127.0.0.1:${responder.port}`);

    const goodAnswer = await ocspQuery(ca, responder.url, ['-cert', good.certFile]);
    expect(goodAnswer.status).to.equal('good');
    expect(goodAnswer.output).to.include(`${good.certFile}: good`);
    expect(goodAnswer.output).to.include('CN = est-ra test OCSP responder');
    expect(goodAnswer.output).to.match(/Next Update: /);
    const badAnswer = await ocspQuery(ca, responder.url, ['-cert', bad.certFile]);
    expect(badAnswer.status).to.equal('revoked');
    expect(badAnswer.output).to.include(`${bad.certFile}: revoked`);
    const unknown = await ocspQuery(ca, responder.url, ['-serial', '0x1234']);
    expect(unknown.status).to.equal('unknown');
  });

  it('ok the responder answers a revocation and a newly issued certificate on the very next request, on the same port', async () => {
    responder ??= await ca.startOcspResponder();
    const { port } = responder;
    const device = await ca.issue('ocsp-fresh');
    expect((await ocspQuery(ca, responder.url, ['-cert', device.certFile])).status).to.equal('good');
    await ca.revoke(device.certFile);
    expect((await ocspQuery(ca, responder.url, ['-cert', device.certFile])).status).to.equal('revoked');
    expect(responder.port).to.equal(port);
    expect(responder.logs()).to.include('waiting for OCSP client connections');
  });

  it('ok stop() and kill() end the process and free the port; restart() serves again on the same port', async () => {
    const own = await ca.startOcspResponder();
    const device = await ca.issue('lifecycle');
    expect(await connects(own.port)).to.equal(true);

    let pid = own.pid;
    await own.stop();
    await gone(pid);
    expect(await connects(own.port)).to.equal(false);

    await own.restart();
    expect(own.pid).to.not.equal(pid);
    expect((await ocspQuery(ca, own.url, ['-cert', device.certFile])).status).to.equal('good');

    pid = own.pid;
    await own.kill();
    await gone(pid);
    expect(await connects(own.port)).to.equal(false);
    await own.stop(); // harmless when already ended
  });

  describe('a responder never outlives the process that started it', () => {
    const script = (dir: string, then: string): string =>
      [
        `const { makeRevocationCa } = await import(${JSON.stringify(HELPER_URL)});`,
        `const ca = await makeRevocationCa(${JSON.stringify(dir)});`,
        'const responder = await ca.startOcspResponder();',
        'console.log(responder.pid);',
        then,
      ].join('\n');

    it('ok on a normal process exit', async () => {
      const out = await mustRun(process.execPath, ['--input-type=module', '-e', script(join(tmp, 'exit'), 'process.exit(0);')]);
      const pid = Number(out.trim());
      expect(pid).to.be.above(0);
      await gone(pid);
    });

    it('ok when the test process is SIGKILLed (needs util-linux setpriv)', async function () {
      const hasSetpriv =
        process.platform === 'linux' && (process.env.PATH ?? '').split(delimiter).some((entry) => entry !== '' && existsSync(join(entry, 'setpriv')));
      if (!hasSetpriv) this.skip();
      const child = spawn(process.execPath, ['--input-type=module', '-e', script(join(tmp, 'sigkill'), 'setInterval(() => {}, 1000);')], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const firstLine = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`helper script exited ${code}`)));
      });
      const pid = Number(firstLine);
      expect(alive(pid)).to.equal(true);
      child.kill('SIGKILL');
      await exited;
      await gone(pid);
    });
  });
});
