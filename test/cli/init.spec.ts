import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { adminCli, CLI } from '../helpers/admin-cli.js';
import { opensslCsr, opensslIssue, opensslSelfSigned } from '../helpers/csr.js';
import { freePort } from '../helpers/net.js';
import { serveEstRa, type EstRaProcess } from '../helpers/est-ra-process.js';
import { mustRun, run } from '../helpers/run.js';

/** Every file under a directory, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(entry.parentPath, entry.name)) : [join(entry.parentPath, entry.name)],
  );
}

describe('est-ra init for production', function () {
  this.timeout(60_000);
  let dir: string;
  let served: EstRaProcess | undefined;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-init-'));
  });
  afterEach(async () => {
    await served?.stop('SIGTERM');
    served = undefined;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('ok no passcode, named policy, profile and CAs, a bare IP is an IP name, the root key written apart and said so', async () => {
    const state = join(dir, 'created');
    const printed = await mustRun(process.execPath, [
      CLI,
      'init',
      '--state-dir',
      state,
      '--server-name',
      '10.1.2.3',
      'ra.plant.local',
      'IP:fd00::7',
      '--policy-name',
      'line-3',
      '--profile-name',
      'sensors',
      '--ca-name',
      'ACME Plant 7',
    ]);
    expect(printed).not.to.match(/passcode \(shown once/i);
    expect(printed).to.contain(`Root CA private key: ${join(state, 'pki', 'offline', 'root-ca.key')}`);
    expect(printed).to.contain('belongs offline');
    expect(printed).to.contain('est-ra passcodes create --config');
    const cli = adminCli(join(state, 'config.yaml'));
    expect(await cli.json('passcodes', 'list')).to.deep.equal([]);
    expect(await cli.text('check-config')).to.contain('OK (1 profile(s))');
    const config = readFileSync(join(state, 'config.yaml'), 'utf8');
    expect(config).to.match(/^authentication_policies:\n {2}line-3:$/m);
    expect(config).to.match(/^profiles:\n {2}sensors:$/m);
    expect(config).not.to.match(/\bdemo:/);
    const san = await mustRun('openssl', ['x509', '-in', join(state, 'pki', 'server.crt'), '-noout', '-ext', 'subjectAltName']);
    expect(san).to.contain('IP Address:10.1.2.3');
    expect(san).to.contain('DNS:ra.plant.local');
    expect(san).to.contain('IP Address:FD00:0:0:0:0:0:0:7');
    expect(san).not.to.contain('DNS:10.1.2.3');
    expect(await mustRun('openssl', ['x509', '-in', join(state, 'pki', 'root-ca.crt'), '-noout', '-subject'])).to.equal('subject=CN = ACME Plant 7 root CA\n');
    expect(await mustRun('openssl', ['x509', '-in', join(state, 'pki', 'issuing-ca.crt'), '-noout', '-subject'])).to.equal(
      'subject=CN = ACME Plant 7 issuing CA\n',
    );
    // The root key is not beside the keys est-ra uses, and only the owner can read it.
    expect(existsSync(join(state, 'pki', 'root-ca.key'))).to.equal(false);
    expect(statSync(join(state, 'pki', 'offline', 'root-ca.key')).mode & 0o777).to.equal(0o600);
    expect(statSync(join(state, 'pki', 'offline')).mode & 0o777).to.equal(0o700);
    expect(config).not.to.contain('offline');
  });

  it('ok init --json says what it wrote; --demo-passcode adds one passcode, for demos', async () => {
    const state = join(dir, 'json');
    const [written] = (await mustRun(process.execPath, [CLI, 'init', '--state-dir', state, '--demo-passcode', '--json']))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, string | null>);
    expect(written).to.deep.include({
      config_file: join(state, 'config.yaml'),
      root_ca_file: join(state, 'pki', 'root-ca.crt'),
      offline_root_key_file: join(state, 'pki', 'offline', 'root-ca.key'),
      policy: 'default',
      profile: 'default',
    });
    expect(written!.demo_passcode).to.match(/^[A-Za-z0-9]{24}$/);
    const passcodes = await adminCli(join(state, 'config.yaml')).json('passcodes', 'list');
    expect(passcodes.map((p) => [p.policy, p.uses, p.status])).to.deep.equal([['default', '0/∞', 'enabled']]);
  });

  it('fail a bad server name or profile name: one line, nothing written', async () => {
    const bad = await run(process.execPath, [CLI, 'init', '--state-dir', join(dir, 'bad-name'), '--server-name', 'IP:ra.plant.local']);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.equal('est-ra: --server-name IP:ra.plant.local: not an IP address\n');
    expect(existsSync(join(dir, 'bad-name'))).to.equal(false);
    const profile = await run(process.execPath, [CLI, 'init', '--state-dir', join(dir, 'bad-profile'), '--profile-name', 'a b']);
    expect(profile.code).to.equal(1);
    expect(profile.stderr.trim().split('\n')).to.have.length(1);
  });

  it('ok listening on 0.0.0.0 logs that bound address, and URLs that each answer with the certificate init made for them', async () => {
    const port = await freePort();
    const state = join(dir, 'wildcard');
    const addresses = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    await mustRun(process.execPath, [
      CLI,
      'init',
      '--state-dir',
      state,
      '--host',
      '0.0.0.0',
      '--port',
      String(port),
      ...addresses.flatMap((a) => ['--server-name', a]),
    ]);
    served = await serveEstRa(join(state, 'config.yaml'));
    const line = served
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{') && l.endsWith('}'))
      .map((l) => JSON.parse(l) as { message: string; url: string; urls: string[] })
      .find((l) => l.message === 'listening')!;
    expect(line.url).to.equal(`https://0.0.0.0:${port}`);
    expect(line.urls).to.deep.equal([`https://127.0.0.1:${port}`, ...addresses.map((a) => `https://${a}:${port}`)]);
    for (const url of line.urls) {
      const status = await mustRun('curl', [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--cacert',
        join(state, 'pki', 'root-ca.crt'),
        `${url}/.well-known/est/cacerts`,
      ]);
      expect(status, url).to.equal('200');
    }
  });

  describe('importing an issuing CA whose root stays offline', () => {
    let pki: string;
    let root: { certFile: string; keyFile: string };
    let intermediate: { certFile: string; keyFile: string };
    let issuing: { certFile: string; keyFile: string };
    const CA = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
    before(async () => {
      pki = join(dir, 'offline-pki');
      await mustRun('mkdir', ['-p', pki]);
      root = await opensslSelfSigned(pki, 'offline-root', { subject: '/CN=Offline Root/O=ACME', addext: CA });
      intermediate = await opensslIssue(pki, 'policy-ca', { subject: '/CN=Policy CA/O=ACME', caFile: root.certFile, caKeyFile: root.keyFile, extensions: CA });
      issuing = await opensslIssue(pki, 'plant-issuing', {
        subject: '/CN=Plant 7 Issuing CA/O=ACME',
        caFile: intermediate.certFile,
        caKeyFile: intermediate.keyFile,
        extensions: ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign'],
      });
    });

    const init = (state: string, ...args: string[]): ReturnType<typeof run> =>
      run(process.execPath, [CLI, 'init', '--state-dir', join(dir, state), '--port', '0', ...args]);

    it('ok a device enrolls with curl under the imported CA, its certificate verifies to the offline root, and no root key is on the host', async () => {
      const port = await freePort();
      const state = join(dir, 'imported');
      const printed = await mustRun(process.execPath, [
        CLI,
        'init',
        '--state-dir',
        state,
        '--port',
        String(port),
        '--issuing-ca',
        issuing.certFile,
        '--issuing-ca-key',
        issuing.keyFile,
        // The chain in any order, one file with both.
        '--ca-chain',
        await bundle(pki, 'chain.pem', [root.certFile, intermediate.certFile]),
      ]);
      expect(printed).not.to.contain('Root CA private key');
      const keys = filesUnder(state).filter((f) => f.endsWith('.key'));
      expect(keys.map((f) => f.slice(state.length + 1)).sort()).to.deep.equal(['pki/issuing-ca.key', 'pki/server.key']);
      expect(readFileSync(join(state, 'pki', 'root-ca.crt'), 'utf8')).to.equal(readFileSync(root.certFile, 'utf8'));

      const configFile = join(state, 'config.yaml');
      served = await serveEstRa(configFile);
      const cli = adminCli(configFile);
      const [created] = await cli.json<{ passcode: string }>('passcodes', 'create', '--policy', 'default', '--max-uses', '1');
      const device = await opensslCsr(state, 'imported-device');
      const url = `https://127.0.0.1:${port}/.well-known/est`;
      const p7 = join(state, 'device.p7');
      const caFile = join(state, 'pki', 'root-ca.crt');
      await mustRun('curl', [
        '-sS',
        '--fail-with-body',
        '--cacert',
        caFile,
        '--user',
        `:${created!.passcode}`,
        '-H',
        'Content-Type: application/pkcs10',
        '--data-binary',
        `@${device.csrPemFile}`,
        `${url}/simpleenroll`,
        '-o',
        p7,
      ]);
      const cacerts = join(state, 'cacerts.p7');
      await mustRun('curl', ['-sS', '--fail-with-body', '--cacert', caFile, `${url}/cacerts`, '-o', cacerts]);
      const deviceCrt = join(state, 'device.crt');
      const chainPem = join(state, 'cacerts.pem');
      await mustRun('bash', [
        '-euo',
        'pipefail',
        '-c',
        `openssl base64 -d -in ${p7} | openssl pkcs7 -inform DER -print_certs -out ${deviceCrt}; openssl base64 -d -in ${cacerts} | openssl pkcs7 -inform DER -print_certs -out ${chainPem}`,
      ]);
      // The offline root alone is the anchor; /cacerts gives the issuing CA and the policy CA.
      expect(await mustRun('openssl', ['verify', '-CAfile', root.certFile, '-untrusted', chainPem, deviceCrt])).to.contain(': OK');
      const [certificate] = await cli.json<{ issuer: string }>('certificates', 'list', '--device', 'imported-device');
      expect(certificate!.issuer).to.contain('CN=Plant 7 Issuing CA');
    });

    it("fail a key that is not the certificate's, a certificate that is no CA, a chain to another root, a missing chain", async () => {
      const other = await opensslSelfSigned(pki, 'other-root', { subject: '/CN=Other Root', addext: CA });
      const leaf = await opensslIssue(pki, 'not-a-ca', {
        subject: '/CN=not a CA',
        caFile: root.certFile,
        caKeyFile: root.keyFile,
        extensions: ['basicConstraints=critical,CA:FALSE'],
      });
      const noSign = await opensslIssue(pki, 'no-sign', {
        subject: '/CN=No Sign CA',
        caFile: root.certFile,
        caKeyFile: root.keyFile,
        extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,cRLSign'],
      });
      const cases: [string, string[], RegExp][] = [
        [
          'wrong-key',
          ['--issuing-ca', issuing.certFile, '--issuing-ca-key', intermediate.keyFile, '--ca-chain', root.certFile, intermediate.certFile],
          /is not the key of --issuing-ca/,
        ],
        ['not-ca', ['--issuing-ca', leaf.certFile, '--issuing-ca-key', leaf.keyFile, '--ca-chain', root.certFile], /is not a CA certificate/],
        ['no-sign', ['--issuing-ca', noSign.certFile, '--issuing-ca-key', noSign.keyFile, '--ca-chain', root.certFile], /lacks keyCertSign/],
        [
          'other-root',
          ['--issuing-ca', issuing.certFile, '--issuing-ca-key', issuing.keyFile, '--ca-chain', other.certFile, intermediate.certFile],
          /does not chain to a root of --ca-chain/,
        ],
        ['no-chain', ['--issuing-ca', issuing.certFile, '--issuing-ca-key', issuing.keyFile], /give the CA certificates above/],
      ];
      for (const [state, args, reason] of cases) {
        const result = await init(state, ...args);
        expect(result.code, state).to.equal(1);
        expect(result.stderr, state).to.match(reason);
        expect(result.stderr.trim().split('\n'), state).to.have.length(1);
        expect(existsSync(join(dir, state)), state).to.equal(false);
      }
    });
  });
});

async function bundle(dir: string, name: string, files: readonly string[]): Promise<string> {
  const file = join(dir, name);
  await mustRun('bash', ['-c', `cat ${files.join(' ')} > ${file}`]);
  return file;
}
