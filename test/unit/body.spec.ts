import { expect } from 'chai';
import { decodeDerBody } from '../../src/pki/der-body.js';
import { EstError } from '../../src/errors.js';

// A short DER SEQUENCE with a long-form length, standing in for a CSR.
const DER = Buffer.concat([Buffer.from([0x30, 0x81, 0x80]), Buffer.alloc(128, 7)]);
const B64 = DER.toString('base64');

describe('request body decoding (tolerant input)', () => {
  const accepted: [string, Buffer | string][] = [
    ['raw DER', DER],
    ['base64 on one line', B64],
    ['base64 on one line with CRLF', `${B64}\r\n`],
    ['base64 wrapped at 64 columns with LF', B64.replace(/.{64}/g, '$&\n')],
    ['base64 wrapped at 76 columns with CRLF', B64.replace(/.{76}/g, '$&\r\n')],
    ['base64 without padding', B64.replace(/=+$/, '')],
    ['PEM', `-----BEGIN CERTIFICATE REQUEST-----\n${B64.replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`],
    ['PEM with line breaks turned into spaces', `-----BEGIN CERTIFICATE REQUEST----- ${B64.replace(/.{64}/g, '$& ')} -----END CERTIFICATE REQUEST-----`],
    ['PEM of the older NEW CERTIFICATE REQUEST kind', `-----BEGIN NEW CERTIFICATE REQUEST-----\n${B64}\n-----END NEW CERTIFICATE REQUEST-----`],
  ];
  for (const [name, body] of accepted) {
    it(`ok ${name}`, () => {
      expect(decodeDerBody(Buffer.from(body))).to.deep.equal(DER);
    });
  }

  const refused: [string, string, string][] = [
    ['empty', '', 'request body is empty'],
    ['binary that is not DER', '\u0001\u0002\u0003', 'request body is not base64, PEM or DER'],
    ['base64 with a stray character', `${B64.slice(0, 20)}*${B64.slice(20)}`, 'request body is not base64, PEM or DER'],
    ['base64 truncated to a lone character', B64.slice(0, 9), 'request body is not valid base64 (truncated?)'],
    ['padding in the middle', `${B64.slice(0, 8)}==${B64.slice(8)}`, 'request body is not valid base64 (truncated?)'],
    ['PEM without END', `-----BEGIN CERTIFICATE REQUEST-----\n${B64}\n`, 'PEM block has no matching END line'],
  ];
  for (const [name, body, reason] of refused) {
    it(`fail ${name}`, () => {
      expect(() => decodeDerBody(Buffer.from(body, 'latin1')))
        .to.throw(EstError)
        .with.property('reason', reason);
    });
  }
});
