import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { decodeDerBody, encodeBase64Body } from '../../src/pki/der-body.js';
import { framingFor } from '../../src/est/respond.js';

describe('base64 framing of answers', () => {
  it('ok wrapped: 64-character lines, each ended by CRLF, for every length up to 3 lines and past 16 KiB', () => {
    for (const size of [1, 2, 3, 47, 48, 49, 95, 96, 97, 144, 765, 766, 12_500]) {
      const der = Buffer.concat([Buffer.from([0x30, 0x82]), randomBytes(size)]);
      const text = encodeBase64Body(der, 'wrapped').toString('latin1');
      const lines = text.split('\r\n');
      expect(lines.pop(), `${size}: ends with CRLF`).to.equal('');
      expect(
        lines.slice(0, -1).every((line) => line.length === 64),
        `${size}: full lines`,
      ).to.equal(true);
      expect(lines.at(-1)!.length).to.be.within(1, 64);
      expect(text).not.to.match(/[^\r]\n/);
      expect(Buffer.from(text, 'base64').equals(der)).to.equal(true);
    }
  });

  it('ok single_line: all of it on one line, then CRLF', () => {
    const der = randomBytes(2000);
    const text = encodeBase64Body(der, 'single_line').toString('latin1');
    expect(text).to.equal(`${der.toString('base64')}\r\n`);
  });

  it('ok auto: one line for a request without a User-Agent (strongSwan pki), lines for every other; a setting wins', () => {
    expect(framingFor('auto', undefined)).to.equal('single_line');
    expect(framingFor('auto', '')).to.equal('single_line');
    expect(framingFor('auto', 'libest 3.2.0')).to.equal('wrapped');
    expect(framingFor('auto', 'curl/7.88.1')).to.equal('wrapped');
    expect(framingFor('wrapped', undefined)).to.equal('wrapped');
    expect(framingFor('single_line', 'libest 3.2.0')).to.equal('single_line');
  });

  it('ok what est-ra writes, est-ra reads back', () => {
    const der = Buffer.concat([Buffer.from([0x30, 0x82, 0x07, 0xd0]), randomBytes(2000)]);
    for (const framing of ['wrapped', 'single_line'] as const) {
      const body = encodeBase64Body(der, framing);
      expect(decodeDerBody(body).equals(der)).to.equal(true);
    }
  });
});
