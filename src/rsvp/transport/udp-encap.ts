/* Where a node sends an RSVP message under the UDP encapsulation of RFC 2205 appendix C, as a
 * pure function. Pu = 1698, Pu' = 1699, G* = 224.0.0.14. A router listens on Pu and joins G* on
 * every interface; a UDP-only host listens on Pu'. A host sends a Path (or PathTear, ResvConf:
 * what goes with Router Alert toward the session's destination D) to G* on Pu: for a multicast D
 * that is what the appendix says; for a unicast D the appendix says D/Pu and Ra/Pu, Ra the
 * first-hop router the host is configured with. We have no such configuration and every RSVP
 * router on the host's LAN has joined G*, so G* on the outgoing interface stands in for Ra, and
 * D/Pu is left out (past the first router D receives the router's copy, on Pu'). What a host sends
 * hop by hop (Resv, ResvTear, PathErr, ResvErr) goes to that hop on Pu: under the encapsulation a
 * host's neighbour is a router. A router speaks UDP only to UDP-only hosts, so all it sends goes
 * to the destination on Pu' (a Path to D/Pu', as the appendix has it). */

export const PU = 1698;
export const PU_HOST = 1699;
export const G_STAR = '224.0.0.14';

export type Role = 'host' | 'router';

/** The port a node of this role listens on, and the group it joins. */
export function listenOn(role: Role): { port: number; group: string | null } {
  return role === 'router' ? { port: PU, group: G_STAR } : { port: PU_HOST, group: null };
}

/** Where a message goes: address and UDP port. */
export function udpDestination(role: Role, p: { dst: string; routerAlert: boolean }): { dst: string; port: number } {
  if (role === 'router') return { dst: p.dst, port: PU_HOST };
  return p.routerAlert ? { dst: G_STAR, port: PU } : { dst: p.dst, port: PU };
}
