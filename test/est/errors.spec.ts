import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { opensslCsr, withBrokenSignature, type KeyAndCsr } from '../helpers/csr.js';
import { httpsRequest } from '../helpers/https.js';

interface ErrorRow {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: (ra: TestEstRa) => Record<string, string>;
  readonly body?: (csr: KeyAndCsr) => Buffer | string;
  readonly status: number;
  /** The exact body; 401 answers are empty, as libest needs. */
  readonly text: string;
  readonly header?: readonly [string, string];
}

const EST = '/.well-known/est';
const pkcs10 = { 'Content-Type': 'application/pkcs10' };
const withPasscode = (ra: TestEstRa): Record<string, string> => ({ ...pkcs10, Authorization: `Basic ${Buffer.from(`:${ra.passcode}`).toString('base64')}` });

/** The error contract, byte for byte: each bad input's status and one-line reason. */
const ROWS: readonly ErrorRow[] = [
  {
    name: 'fail simpleenroll/garbage body',
    method: 'POST',
    path: '/simpleenroll',
    headers: withPasscode,
    body: () => 'this is not a CSR at all!',
    status: 400,
    text: '400 request body is not base64, PEM or DER\n',
  },
  {
    name: 'fail simpleenroll/empty body',
    method: 'POST',
    path: '/simpleenroll',
    headers: withPasscode,
    body: () => '',
    status: 400,
    text: '400 request body is empty\n',
  },
  {
    name: 'fail simpleenroll/base64 of something that is not a CSR',
    method: 'POST',
    path: '/simpleenroll',
    headers: withPasscode,
    body: () => Buffer.from('hello world, not DER').toString('base64'),
    status: 400,
    text: '400 malformed PKCS#10 request: content runs past its container\n',
  },
  {
    name: 'fail simpleenroll/CSR with a bad signature',
    method: 'POST',
    path: '/simpleenroll',
    headers: withPasscode,
    body: (c) => withBrokenSignature(c.csrDer).toString('base64'),
    status: 400,
    text: '400 CSR signature does not verify (no proof of possession)\n',
  },
  {
    name: 'fail simpleenroll/truncated base64',
    method: 'POST',
    path: '/simpleenroll',
    headers: withPasscode,
    body: (c) => c.csrDer.toString('base64').slice(0, 101),
    status: 400,
    text: '400 request body is not valid base64 (truncated?)\n',
  },
  {
    name: 'fail simpleenroll/base64 cut short on a 4-character boundary',
    method: 'POST',
    path: '/simpleenroll',
    headers: withPasscode,
    body: (c) => c.csrDer.toString('base64').slice(0, 100),
    status: 400,
    text: '400 malformed PKCS#10 request: content runs past its container\n',
  },
  {
    name: 'fail simpleenroll/PEM without END line',
    method: 'POST',
    path: '/simpleenroll',
    headers: withPasscode,
    body: (c) => c.csrPem.split('-----END')[0]!,
    status: 400,
    text: '400 PEM block has no matching END line\n',
  },
  {
    name: 'fail simpleenroll/wrong content type',
    method: 'POST',
    path: '/simpleenroll',
    headers: (ra) => ({ ...withPasscode(ra), 'Content-Type': 'application/json' }),
    body: (c) => c.csrPem,
    status: 415,
    text: '415 Content-Type must be application/pkcs10\n',
  },
  {
    name: 'fail simpleenroll/wrong method',
    method: 'GET',
    path: '/simpleenroll',
    status: 405,
    text: '405 simpleenroll takes POST\n',
    header: ['Allow', 'POST'],
  },
  {
    name: 'fail cacerts/wrong method',
    method: 'POST',
    path: '/cacerts',
    body: () => 'x',
    status: 405,
    text: '405 cacerts takes GET\n',
    header: ['Allow', 'GET'],
  },
  { name: 'fail unknown label', method: 'GET', path: '/no-such-line/cacerts', status: 404, text: "404 unknown EST label 'no-such-line'\n" },
  { name: 'fail unknown operation', method: 'GET', path: '/demo/cacert', status: 404, text: '404 unknown EST operation\n' },
  { name: 'fail path outside EST', method: 'GET', path: '/../../admin', status: 404, text: '404 not found\n' },
  {
    name: 'fail simpleenroll/oversized body',
    method: 'POST',
    path: '/simpleenroll',
    headers: withPasscode,
    body: () => 'A'.repeat(70_000),
    status: 413,
    text: '413 request body too large\n',
  },
  {
    name: 'fail simpleenroll/no passcode',
    method: 'POST',
    path: '/simpleenroll',
    headers: () => pkcs10,
    body: (c) => c.csrPem,
    status: 401,
    text: '',
    header: ['WWW-Authenticate', 'Basic realm="est-ra"'],
  },
  {
    name: 'fail simpleenroll/wrong passcode',
    method: 'POST',
    path: '/simpleenroll',
    headers: () => ({ ...pkcs10, Authorization: `Basic ${Buffer.from(':not-the-passcode').toString('base64')}` }),
    body: (c) => c.csrPem,
    status: 401,
    text: '',
    header: ['WWW-Authenticate', 'Basic realm="est-ra"'],
  },
  {
    name: 'fail simpleenroll/malformed Authorization',
    method: 'POST',
    path: '/simpleenroll',
    headers: () => ({ ...pkcs10, Authorization: 'Basic !!!' }),
    body: (c) => c.csrPem,
    status: 401,
    text: '',
    header: ['WWW-Authenticate', 'Basic realm="est-ra"'],
  },
  {
    name: 'fail simpleenroll/Bearer instead of Basic',
    method: 'POST',
    path: '/simpleenroll',
    headers: () => ({ ...pkcs10, Authorization: 'Bearer abc' }),
    body: (c) => c.csrPem,
    status: 401,
    text: '',
    header: ['WWW-Authenticate', 'Basic realm="est-ra"'],
  },
  {
    name: 'fail simplereenroll/no client certificate',
    method: 'POST',
    path: '/simplereenroll',
    headers: withPasscode,
    body: (c) => c.csrPem,
    status: 403,
    text: '403 simplereenroll requires the certificate being renewed as the TLS client certificate\n',
  },
  {
    name: 'fail serverkeygen/not offered',
    method: 'POST',
    path: '/serverkeygen',
    headers: withPasscode,
    body: (c) => c.csrPem,
    status: 501,
    text: "501 profile 'demo' does not generate keys (key_generation_option: client_side): make the key and use simpleenroll\n",
  },
];

describe('EST error contract (exact status and reason)', () => {
  let ra: TestEstRa;
  let csr: KeyAndCsr;

  before(async () => {
    ra = await startEstRa();
    csr = await opensslCsr(ra.dir, 'err-device');
  });
  after(async () => ra.close());

  for (const row of ROWS) {
    it(row.name, async () => {
      const answer = await httpsRequest(`${ra.url}${EST}${row.path}`, {
        method: row.method,
        headers: row.headers?.(ra),
        body: row.body?.(csr),
        ca: ra.rootCaFile,
      });
      expect(answer.status).to.equal(row.status);
      expect(answer.body).to.equal(row.text);
      expect(answer.rawHeaders).to.include('Content-Length');
      expect(answer.body).not.to.match(/at .*\.js:\d+/, 'no stack trace');
      if (row.text !== '') expect(answer.headers['content-type']).to.equal('text/plain; charset=utf-8');
      if (row.header) {
        const index = answer.rawHeaders.indexOf(row.header[0]);
        expect(index, `${row.header[0]} header in exact case`).to.be.at.least(0);
        expect(answer.rawHeaders[index + 1]).to.equal(row.header[1]);
      }
    });
  }

  it("ok csrattrs: the demo profile's own rules, in the RFC 7030 §4.5.2 encoding", async () => {
    const answer = await httpsRequest(`${ra.url}${EST}/csrattrs`, { method: 'GET', ca: ra.rootCaFile });
    expect(answer.status).to.equal(200);
    expect(answer.headers['content-type']).to.equal('application/csrattrs');
    expect(answer.rawHeaders[answer.rawHeaders.indexOf('Content-Transfer-Encoding') + 1]).to.equal('base64');
    // SEQUENCE { rsaEncryption {2048}, {3072}, {4096}, ecPublicKey {P-256}, {P-384}, {P-521}, Ed25519, commonName, the match_issuer signatures }
    expect(Buffer.from(answer.body, 'base64').toString('hex')).to.equal(
      [
        '3081ab',
        '301106092a864886f70d010101310402020800',
        '301106092a864886f70d010101310402020c00',
        '301106092a864886f70d010101310402021000',
        '301506072a8648ce3d0201310a06082a8648ce3d030107',
        '301206072a8648ce3d0201310706052b81040022',
        '301206072a8648ce3d0201310706052b81040023',
        '06032b6570',
        '0603550403',
        '06092a864886f70d01010b06082a8648ce3d04030206082a8648ce3d04030306082a8648ce3d040304',
      ].join(''),
    );
  });

  it('ok a refused request leaves est-ra serving', async () => {
    const answer = await httpsRequest(`${ra.url}${EST}/cacerts`, { method: 'GET', ca: ra.rootCaFile });
    expect(answer.status).to.equal(200);
  });
});
