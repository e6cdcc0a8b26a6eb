import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

/**
 * True for addresses a webhook must not reach unless DELIVERY_ALLOW_PRIVATE_TARGETS: anything
 * but plain public unicast (loopback, RFC 1918, link-local incl. 169.254.169.254, CGNAT,
 * multicast, unique-local, unspecified, reserved, and IPv4-mapped IPv6 forms of those).
 */
export function isPrivateAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return true;
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  return ip.range() !== 'unicast';
}

export class PrivateTargetError extends Error {
  constructor(host: string) {
    super(`${host} resolves to a private, loopback or otherwise internal address`);
    this.name = 'PrivateTargetError';
  }
}

/** Resolves `host` and throws PrivateTargetError when any address it has is internal. */
export async function assertPublicHost(host: string): Promise<void> {
  const bare = host.replace(/^\[|\]$/g, '');
  const addresses = ipaddr.isValid(bare) ? [bare] : (await lookup(bare, { all: true })).map((a) => a.address);
  if (addresses.length === 0 || addresses.some(isPrivateAddress)) throw new PrivateTargetError(host);
}
