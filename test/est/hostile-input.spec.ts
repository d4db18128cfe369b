import { generateKeyPairSync, sign } from 'node:crypto';
import { connect } from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { mustRun, run } from '../helpers/run.js';
import { createPasscode } from '../helpers/passcodes.js';
import { eventually } from '../helpers/wait.js';
import { bitString, contextTag, objectIdentifier, sequence, set, smallInteger, tlv } from '../../src/pki/der.js';
import { latestRequest } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** Issue #10, the smaller findings: each probed as the issue describes it, with real clients. */
describe('hostile input: answers that are right and logs that tell the truth', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa();
  });
  after(async () => ra.close());

  it('#10 - ok a 501 for serverkeygen is an answer, not an internal error in the log', async () => {
    const answer = await curl(ra, '/serverkeygen', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', 'x']);
    expect(answer.status).to.equal(501);
    expect(ra.logs.filter((line) => line.includes('"level":"error"'))).to.deep.equal([]);
  });

  it('#10 - ok a raw DER CSR under 128 bytes of content (Ed25519, empty subject) is read as DER', async () => {
    const file = join(ra.dir, 'tiny.der');
    await mustRun('openssl', [
      'req',
      '-new',
      '-newkey',
      'ed25519',
      '-nodes',
      '-keyout',
      join(ra.dir, 'tiny.key'),
      '-subj',
      '/',
      '-outform',
      'DER',
      '-out',
      file,
    ]);
    expect(readFileSync(file)[1]).to.be.below(0x80);
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`]);
    // Decoded and parsed: the demo profile then asks for a common name.
    expect(answer.body).to.equal('403 subject.common_name is required; the CSR has none\n');
  });

  it('#10 - ok a passcode sent as the Basic username too is never recorded or logged, where the policy uses no usernames', async () => {
    const device = await opensslCsr(ra.dir, 'user-pass');
    const answer = await curl(ra, '/simpleenroll', ['--user', `${ra.passcode}:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    const latest = await latestRequest(ra, { show: true });
    expect(JSON.stringify(latest)).not.to.contain(ra.passcode);
    expect(ra.logs.join('\n')).not.to.contain(ra.passcode);
  });

  it('#10 - fail TLS 1.2 without an AEAD suite is refused; ok with ECDHE-ECDSA-AES128-GCM', async () => {
    const base = ['s_client', '-connect', `127.0.0.1:${ra.port}`, '-CAfile', ra.rootCaFile, '-tls1_2'];
    const cbc = await run('openssl', [...base, '-cipher', 'ECDHE-ECDSA-AES128-SHA'], { input: '' });
    expect(cbc.stdout + cbc.stderr).to.contain('handshake failure');
    const gcm = await run('openssl', [...base, '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], { input: '' });
    expect(gcm.stdout).to.contain('Cipher is ECDHE-ECDSA-AES128-GCM-SHA256');
  });

  it('#10 - fail a client-initiated TLS 1.2 renegotiation is refused', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: ra.port, ca: readFileSync(ra.rootCaFile), maxVersion: 'TLSv1.2', servername: 'localhost' }, () => {
        socket.renegotiate({}, (err) => {
          resolve(err ? 'refused' : 'renegotiated');
          socket.destroy();
        });
      });
      socket.on('error', () => resolve('refused'));
    });
    expect(outcome).to.equal('refused');
  });

  it('#10 - ok a one-use passcode: the device whose answer was lost sends the same CSR again and gets the same certificate', async () => {
    const passcode = await createPasscode(ra, '--max-uses', '1');
    const device = await opensslCsr(ra.dir, 'lost-answer');
    const send = () => curl(ra, '/simpleenroll', ['--user', `:${passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    const first = await send();
    expect(first.status, first.body).to.equal(200);
    const again = await send();
    expect(again.status, again.body).to.equal(200);
    expect(again.body).to.equal(first.body);
    const other = await opensslCsr(ra.dir, 'lost-answer-2');
    const spent = await curl(ra, '/simpleenroll', ['--user', `:${passcode}`, ...PKCS10, '--data-binary', `@${other.csrPemFile}`]);
    expect(spent.status, 'a new CSR takes a new use, and there is none').to.equal(401);
  });

  it('#10 - ok a refused TLS handshake is logged at warn with the address and reason, once per minute', async () => {
    const before = ra.logs.length;
    for (let i = 0; i < 5; i++) await run('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${ra.port}/.well-known/est/cacerts`]);
    const lines = await eventually(() => {
      const found = ra.logs.slice(before).filter((line) => line.includes('TLS handshake refused'));
      return found.length > 0 ? found : undefined;
    }, 5_000);
    expect(lines).to.have.length(1);
    expect(JSON.parse(lines[0]!)).to.include({ level: 'warn', peer: '127.0.0.1' });
  });

  it('#10 - fail a signed CSR whose subject nests 200 levels deep is a 400, never a 500', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let nested: Buffer = tlv(0x0c, Buffer.from('deep'));
    for (let i = 0; i < 200; i++) nested = sequence(nested);
    const subject = sequence(set(sequence(objectIdentifier('2.5.4.3'), nested)));
    const info = sequence(smallInteger(0), subject, publicKey.export({ type: 'spki', format: 'der' }), contextTag(0));
    const csr = sequence(info, sequence(objectIdentifier('1.2.840.10045.4.3.2')), bitString(sign('sha256', info, privateKey)));
    const file = join(ra.dir, 'deep.der');
    writeFileSync(file, csr);
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${file}`]);
    expect(answer.status, answer.body).to.equal(400);
    expect(answer.body).to.match(/^400 malformed PKCS#10 request: /);
  });
});
