/* The connection to the fleet's etcd, for the daemon and for `qos fleet`: endpoints from
 * --fleet (or QOSD_FLEET), client TLS from --fleet-ca/--fleet-cert/--fleet-key. */

import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { QosError } from '../errors.js';
import { parseFleet } from './keys.js';

export { parseFleet } from './keys.js';

export interface FleetConnection { fleet: string; ca?: string; cert?: string; key?: string }

/** How long one request to etcd may take (streams, the watches and lease keep-alives, have
 * none): a member without quorum, or one not yet in its cluster, takes the connection and
 * never answers, and a call without a deadline would wait for ever. */
export const CALL_TIMEOUT_MS = 10_000;

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new QosError('QOS_ERR_USAGE', `cannot read ${what} ${file}: ${(e as Error).message}`);
  }
}

/** A client of the fleet's etcd (it connects at its first call). TLS when a CA is given; a
 * client certificate and key go together. */
export function fleetClient(o: FleetConnection): Etcd3 {
  if ((o.cert === undefined) !== (o.key === undefined)) throw new QosError('QOS_ERR_USAGE', '--fleet-cert and --fleet-key go together: the client certificate and its private key');
  if (o.cert !== undefined && o.ca === undefined) throw new QosError('QOS_ERR_USAGE', '--fleet-cert needs --fleet-ca: the CA that signed the etcd servers\' certificates');
  const hosts = parseFleet(o.fleet, o.ca !== undefined);
  if (hosts.some((h) => h.startsWith('https:')) && o.ca === undefined) throw new QosError('QOS_ERR_USAGE', 'etcds:// needs --fleet-ca: the CA that signed the etcd servers\' certificates');
  return new Etcd3({
    hosts,
    ...(o.ca === undefined ? {} : {
      credentials: {
        rootCertificate: readPem(o.ca, '--fleet-ca'),
        ...(o.cert === undefined ? {} : { certChain: readPem(o.cert, '--fleet-cert'), privateKey: readPem(o.key!, '--fleet-key') }),
      },
    }),
    dialTimeout: 3000,
    defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
}

/** An etcd failure as the CLI reports it. */
export function fleetError(e: unknown, what: string): QosError {
  if (e instanceof QosError) return e;
  const msg = (e as Error).message ?? String(e);
  const denied = /permission denied|PermissionDenied|authentication/i.test(msg);
  return new QosError(denied ? 'QOS_ERR_FORBIDDEN' : 'QOS_ERR_FLEET_UNREACHABLE', `${what}: ${msg}`);
}
