import { describe, expect, it } from 'vitest';
import { assertPublicHost, isPrivateAddress, PrivateTargetError } from '../../src/webhooks/ssrf.js';

describe('which target addresses count as private', () => {
  it.each([
    // IPv4-compatible (::/96). ipaddr.js reads ::a.b.c.d as mapped, the form libuv gives DNS
    // answers in; either way the IPv4 address decides.
    ['::7f00:1', '127.0.0.1'],
    ['::127.0.0.1', '127.0.0.1'],
    ['::a9fe:a9fe', '169.254.169.254'],
    ['::a00:1', '10.0.0.1'],
    // IPv4-mapped (::ffff:0:0/96)
    ['::ffff:7f00:1', '127.0.0.1'],
    ['::ffff:192.168.1.1', '192.168.1.1'],
    // IPv4-translated, SIIT (::ffff:0:0:0/96)
    ['::ffff:0:7f00:1', '127.0.0.1'],
    ['::ffff:0:169.254.169.254', '169.254.169.254'],
    // NAT64 well-known prefix (64:ff9b::/96)
    ['64:ff9b::7f00:1', '127.0.0.1'],
    ['64:ff9b::10.0.0.1', '10.0.0.1'],
    // 6to4 (2002::/16, IPv4 in bits 16-47)
    ['2002:7f00:1::', '127.0.0.1'],
    ['2002:a9fe:a9fe:1::1', '169.254.169.254'],
    ['2002:c0a8:101::', '192.168.1.1'],
  ])('When the address is %s (carrying %s), then it is private', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each([
    ['::808:808', '8.8.8.8'],
    ['::ffff:808:808', '8.8.8.8'],
    ['::ffff:0:808:808', '8.8.8.8'],
    ['64:ff9b::808:808', '8.8.8.8'],
    ['64:ff9b::8.8.8.8', '8.8.8.8'],
    ['2002:808:808::1', '8.8.8.8'],
  ])('When the address is %s (carrying public %s), then it is public', (address) => {
    expect(isPrivateAddress(address)).toBe(false);
  });

  it.each(['::', '::1', 'fc00::1', 'fd00::1', 'fe80::1', 'ff02::1', '64:ff9b:1::808:808', '64:ff9b:1::7f00:1'])(
    'When the address is %s, then it is private',
    (address) => {
      expect(isPrivateAddress(address)).toBe(true);
    },
  );

  it.each(['2606:4700::1111', '2a00:1450:4001:81c::200e', '8.8.8.8', '93.184.215.14'])(
    'When the address is plain public unicast %s, then it is public',
    (address) => {
      expect(isPrivateAddress(address)).toBe(false);
    },
  );

  it.each(['127.0.0.1', '10.1.2.3', '169.254.169.254', '100.64.0.1', '0.0.0.0', 'not-an-address'])(
    'When the address is %s, then it is private',
    (address) => {
      expect(isPrivateAddress(address)).toBe(true);
    },
  );

  it.each(['http://[::7f00:1]/', 'http://[::127.0.0.1]/', 'http://[64:ff9b::127.0.0.1]/', 'http://[2002:7f00:1::]/'])(
    'When a URL host is %s, then the create-time check refuses it',
    async (url) => {
      await expect(assertPublicHost(new URL(url).hostname)).rejects.toBeInstanceOf(PrivateTargetError);
    },
  );
});
