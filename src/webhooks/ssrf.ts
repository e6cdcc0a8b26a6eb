import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

/**
 * IPv6 prefixes whose addresses carry an IPv4 address, and the byte where it starts. Such an
 * address reaches (or is translated to) that IPv4 host, so it is judged as that host.
 * 64:ff9b:1::/48 (RFC 8215 local-use NAT64) is left out, and so refused: its operator chooses
 * the prefix length, which moves the IPv4 bits, so no fixed position names the real target.
 */
const EMBEDDED_IPV4 = (
  [
    ['::/96', 12], // IPv4-compatible (deprecated, RFC 4291); :: and ::1 become 0.0.0.x, refused
    ['::ffff:0:0/96', 12], // IPv4-mapped
    ['::ffff:0:0:0/96', 12], // IPv4-translated, SIIT (RFC 6145)
    ['64:ff9b::/96', 12], // NAT64 well-known prefix (RFC 6052)
    ['2002::/16', 2], // 6to4 (RFC 3056): bits 16-47
  ] as const
).map(([cidr, at]) => ({ prefix: ipaddr.IPv6.parseCIDR(cidr), at }));

/**
 * True for addresses a webhook must not reach unless DELIVERY_ALLOW_PRIVATE_TARGETS: anything
 * but plain public unicast (loopback, RFC 1918, link-local incl. 169.254.169.254, CGNAT,
 * multicast, unique-local, unspecified, reserved). An IPv6 address carrying an IPv4 one (see
 * EMBEDDED_IPV4) is judged by that IPv4 address.
 */
export function isPrivateAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return true;
  const ip = ipaddr.parse(address);
  const embedded = ip instanceof ipaddr.IPv6 ? EMBEDDED_IPV4.find(({ prefix }) => ip.match(prefix)) : undefined;
  const judged = embedded ? new ipaddr.IPv4(ip.toByteArray().slice(embedded.at, embedded.at + 4)) : ip;
  return judged.range() !== 'unicast';
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
