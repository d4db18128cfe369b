import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { certsFromP7, curl, opensslVerify, strongswanPki } from '../helpers/clients.js';
import { opensslCsr } from '../helpers/csr.js';
import type { CertificateJson, RequestJson, StoreStatsJson } from '../helpers/admin-cli.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import type { Json } from '../helpers/config.js';
import { startHaproxy, type TestHaproxy } from '../helpers/haproxy.js';
import { freePort } from '../helpers/net.js';
import { eventually } from '../helpers/wait.js';
import type { TestEstRa } from '../helpers/est-ra.js';
import { V2_SIGNATURE } from '../../src/est/proxy-protocol.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
/** HAProxy connects to the nodes from this address, the only one est-ra reads PROXY headers from. */
const BALANCER = '127.0.0.5';

/**
 * Two est-ra nodes on one PostgreSQL behind Debian's HAProxy in TCP mode
 * with PROXY protocol v2 (docs/cluster.md): device TLS and client
 * certificates pass through, est-ra sees each device's own address, and a
 * node killed mid-run loses no request and issues none twice.
 */
describe('two est-ra nodes behind HAProxy (mode tcp, send-proxy-v2)', function () {
  this.timeout(180_000);
  let cluster: TestCluster;
  let haproxy: TestHaproxy;
  /** The devices' view: every request goes to HAProxy. */
  let front: TestEstRa;

  before(async () => {
    cluster = await startCluster({
      edit: (config) => {
        (config.listen as Json).proxy_protocol = { from: [BALANCER] };
        // A request the killed node held is taken over once its lease runs out (src/enrollment/node.ts).
        config.cluster = { lease_seconds: 5 };
        // est-ra's own allowlist sees the device: 127.0.0.1 may enroll, any other address may not.
        ((config.profiles as Record<string, Json>).demo as Json).allowed_ip_addresses = ['127.0.0.1'];
      },
    });
    const withOps = (port: number) => (config: Json) => void (config.ops = { listen: { host: '127.0.0.1', port } });
    const ops = { 'node-a': await freePort(), 'node-b': await freePort() };
    const [a, b] = await Promise.all([cluster.start('node-a', withOps(ops['node-a'])), cluster.start('node-b', withOps(ops['node-b']))]);
    haproxy = await startHaproxy(
      [
        { name: 'node-a', port: Number(new URL(a.url).port), checkPort: ops['node-a'] },
        { name: 'node-b', port: Number(new URL(b.url).port), checkPort: ops['node-b'] },
      ],
      { source: BALANCER },
    );
    front = { ...cluster.client('node-a'), url: `https://127.0.0.1:${haproxy.port}` };
  });
  after(async () => {
    await (haproxy as TestHaproxy | undefined)?.stop();
    await (cluster as TestCluster | undefined)?.close();
  });

  const enroll = async (name: string, extra: readonly string[] = []): Promise<{ status: number; body: string }> => {
    const device = await opensslCsr(cluster.dir, name, { subject: `/CN=${name}` });
    return curl(front, '/simpleenroll', [...extra, '--user', `:${cluster.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  };
  /** `CN=name` however the subject is printed. */
  const isCn = (subject: string | null, name: string): boolean => subject?.replace(/^.*CN=/, '') === name;
  const requestsOf = async (cn: string): Promise<RequestJson[]> =>
    (await cluster.cli.json<RequestJson>('requests', 'list', '--limit', '1000')).filter((r) => isCn(r.subject, cn));

  it("both nodes serve through HAProxy (health checks on each node's /readyz), and the request records the device's address", async () => {
    const answers = await Promise.all([enroll('via-lb-1'), enroll('via-lb-2')]);
    expect(answers.map((a) => a.status)).to.deep.equal([200, 200]);
    const cert = await certsFromP7(cluster.dir, answers[0].body, 'via-lb-1-cert');
    expect(await opensslVerify(front, cert)).to.include('OK');
    const [record] = await requestsOf('via-lb-1');
    expect(record?.peer_address).to.equal('127.0.0.1');
    // Round robin: both nodes answered devices (each logs the requests it served).
    for (const name of ['node-a', 'node-b']) expect(cluster.node(name).output(), name).to.include('simpleenroll');
  });

  it("a device at 127.0.0.2 is refused by the profile's allowlist: est-ra sees the device, not HAProxy", async () => {
    const refused = await enroll('from-127-0-0-2', ['--interface', '127.0.0.2']);
    expect(refused.status, refused.body).to.equal(403);
    // A refusal before authentication is counted per address, not recorded as a request.
    const [stats] = await cluster.cli.json<StoreStatsJson>('store', 'stats', '--refusals', '5');
    expect(stats!.refusals.map((r) => [r.peer_address, r.status])).to.deep.include(['127.0.0.2', 403]);
    expect(stats!.refusals.map((r) => r.peer_address)).to.not.include(BALANCER);
  });

  it('TLS client certificates reach est-ra through HAProxy: strongSwan pki --est enrolls, then re-enrolls with its certificate', async () => {
    const device = await opensslCsr(cluster.dir, 'swan-lb', { subject: '/CN=swan-lb' });
    const first = await strongswanPki(front, ['--est', '--in', device.csrDerFile, '--userpass', `device:${cluster.passcode}`, '--outform', 'pem']);
    expect(first.code, first.stderr).to.equal(0);
    const certFile = join(cluster.dir, 'swan-lb.crt');
    writeFileSync(certFile, first.stdout);
    const renewal = await opensslCsr(cluster.dir, 'swan-lb-2', { subject: '/CN=swan-lb' });
    const second = await strongswanPki(front, [
      '--est',
      '--in',
      renewal.csrDerFile,
      '--cert',
      certFile,
      '--key',
      join(cluster.dir, 'swan-lb.key'),
      '--outform',
      'pem',
    ]);
    expect(second.code, second.stderr).to.equal(0);
    const requests = await requestsOf('swan-lb');
    expect(requests.map((r) => [r.operation, r.outcome, r.peer_address])).to.deep.equal([
      ['simplereenroll', 'issued', '127.0.0.1'],
      ['simpleenroll', 'issued', '127.0.0.1'],
    ]);
    expect(readFileSync(certFile, 'utf8')).to.include('BEGIN CERTIFICATE');
  });

  it('a PROXY header from an address that is no balancer is not read: the connection is TLS or nothing', async () => {
    const node = cluster.node('node-a');
    const port = Number(new URL(node.url).port);
    // Claims 10.66.66.66 to node-a directly from 127.0.0.1.
    const spoof = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0, 12, 10, 66, 66, 66, 127, 0, 0, 1, 0x30, 0x39, 0x20, 0xfb])]);
    await new Promise<void>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' }, () => socket.write(spoof));
      socket.on('data', () => undefined);
      socket.on('close', () => resolve());
      socket.on('error', () => undefined);
    });
    const refusal = await eventually(() =>
      node
        .output()
        .split('\n')
        .find((l) => l.includes('TLS handshake refused') && l.includes('"peer":"127.0.0.1"')),
    );
    expect(refusal).to.not.include('10.66.66.66');
    // And a balancer's address that sends no header is refused, with a log line.
    const plain = await curl({ ...cluster.client('node-a') }, '/cacerts', ['--interface', BALANCER]);
    expect(plain.status).to.equal(0);
    await eventually(() =>
      node
        .output()
        .split('\n')
        .find((l) => l.includes('bad PROXY header') && l.includes(BALANCER)),
    );
  });

  it('one node killed (SIGKILL) mid-run: every device succeeds on retry through HAProxy, none lost, none issued twice', async () => {
    const devices = Array.from({ length: 16 }, (_, i) => `kill-run-${i}`);
    const csrs = await Promise.all(devices.map((name) => opensslCsr(cluster.dir, name, { subject: `/CN=${name}` })));
    let killed: Promise<void> | undefined;
    let answered = 0;
    /** A device as firmware does it: the same CSR again after a failed attempt (a cut connection, a 5xx), until an answer. */
    const device = async (i: number): Promise<number> => {
      let last = 0;
      for (let attempt = 0; attempt < 60; attempt++) {
        const answer = await curl(front, '/simpleenroll', ['--user', `:${cluster.passcode}`, ...PKCS10, '--data-binary', `@${csrs[i]!.csrPemFile}`]);
        // The kill comes once a few devices have their answer and the rest are in flight.
        if (++answered === 4) killed = cluster.node('node-b').stop('SIGKILL');
        // 202: the request is recorded and held by a node (the killed one, until its lease runs out); ask again, as RFC 7030 §4.2.3 says.
        last = answer.status;
        if (answer.status === 200) return 200;
        await new Promise((r) => setTimeout(r, answer.status === 202 ? 1000 : 200));
      }
      return last;
    };
    const statuses = await Promise.all(devices.map((_, i) => device(i)));
    await killed;
    expect(cluster.node('node-b').child.signalCode).to.equal('SIGKILL');
    expect(
      statuses.filter((s) => s !== 200 && s !== 202),
      'devices without an answer',
    ).to.deep.equal([]);
    // Read the shared state with the admin CLI: one certificate per device, every device's request recorded.
    const certificates = await cluster.cli.json<CertificateJson>('certificates', 'list', '--limit', '1000');
    for (const [i, name] of devices.entries()) {
      const issued = certificates.filter((c) => isCn(c.subject, name));
      const sha256 = createHash('sha256').update(readFileSync(csrs[i]!.csrDerFile)).digest('hex');
      const requests = (await cluster.cli.json<RequestJson>('requests', 'list', '--limit', '1000')).filter((r) => r.csr_sha256 === sha256);
      expect(requests.length, `${name}: its request is recorded`).to.be.at.least(1);
      // 200: exactly one certificate; 202: still pending, none yet.
      expect(issued.length, `${name}: certificates issued`).to.equal(statuses[i] === 200 ? 1 : 0);
    }
    expect((await haproxy.serverStates())['node-b']).to.match(/DOWN/);
  });
});
