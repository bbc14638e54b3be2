/* TIME_VALUES (RFC 2205 appendix A.4): the refresh period R the sender of Path and Resv uses,
 * in milliseconds (c-type 1). */

import { CLASS, objectCodec, unknownCType } from './object.js';

export interface TimeValues {
  kind: 'TIME_VALUES';
  /** refresh period R, milliseconds */
  refreshMs: number;
}

export const timeValues = objectCodec<TimeValues>({
  name: 'TIME_VALUES',
  classNum: CLASS.TIME_VALUES,
  cType: () => 1,
  bodyLength: () => 4,
  write(v, w) { w.u32(v.refreshMs, 'refresh period'); },
  read(r, cType) {
    if (cType !== 1) unknownCType(r, cType);
    return { kind: 'TIME_VALUES', refreshMs: r.u32('refresh period') };
  },
});
