/* `qos policy check` for a policy's script: compiles and runs its top level in the same
 * sandbox the daemon uses, and reports a fault with the script's line and column. */

import { QosError } from '../errors.js';
import type { PolicyScript } from '../policy/load.js';
import { DEFAULT_LIMITS, JsSandbox, type HandlerName } from './js-sandbox.js';
import { TclHost } from './tcl-host.js';

/** The handlers the script exports; throws QOS_ERR_POLICY_INVALID if it does not compile. */
export async function checkScript(script: PolicyScript): Promise<HandlerName[]> {
  if (script.kind === 'tcl') {
    const host = await TclHost.start(script.path, { limits: DEFAULT_LIMITS });
    const handlers = [...host.handlers];
    await host.close();
    return handlers;
  }
  const sb = await JsSandbox.create(script.source, script.path);
  if (!(sb instanceof JsSandbox)) {
    throw new QosError('QOS_ERR_POLICY_INVALID', `${script.path}: ${sb.message}`, [{ file: script.path, line: sb.line, col: sb.col, message: sb.message }]);
  }
  const handlers = sb.handlers;
  sb.dispose();
  if (handlers.length === 0) {
    throw new QosError('QOS_ERR_POLICY_INVALID', `${script.path}: exports no handler`, [{ file: script.path, line: 1, col: 1, message: 'the script exports no handler (Socket, Connect, Bind, Listen, Accept, SendTo, Close, Shutdown, Startup, Cleanup)' }]);
  }
  return handlers;
}
