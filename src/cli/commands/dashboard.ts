/* `qos dashboard`: the URL to open the running daemon's web dashboard with (docs/dashboard.md):
 * where it listens, from GET /v1/status, and the login token from the root-only file the
 * daemon wrote, in the URL's fragment (a browser does not send it in the request line, so no
 * log records it; the page posts it to /api/login). */

import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { callJson } from '../../daemon/admin-client.js';
import { adminSocket } from '../../paths.js';
import { print } from '../format.js';

/** Registers `qos dashboard`. */
export function dashboardCommands(program: Command): void {
  program
    .command('dashboard')
    .description('print the URL that opens the daemon\'s web dashboard, login token included (needs root: the token file is root\'s only)')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print {url, token}')
    .action(async (o: { admin: string; json?: boolean }) => {
      const s = await callJson<{ dashboard?: { url?: string | null; token_file?: string } }>(o.admin, 'GET', '/v1/status');
      const d = s.dashboard;
      if (!d?.url || !d.token_file) throw new QosError('QOS_ERR_ENVIRONMENT', `the daemon on ${o.admin} serves no dashboard: start it with --http ADDR:PORT (qos daemon --http 127.0.0.1:8080)`);
      const { readToken } = await import('../../dashboard/token.js');
      const token = readToken(d.token_file);
      const url = `${d.url}#token=${token}`;
      print(o.json ? JSON.stringify({ url, token }, null, 2) : url);
    });
}
