#!/usr/bin/env node
/* qos: the single command-line entry point. Each command group registers itself (commands/);
 * errors are caught here, once, and mapped to exit codes (errors.ts); --json prints
 * machine-readable output wherever there is output. */

import { Command, CommanderError } from 'commander';
import { exitCodeFor, formatProblems, QosError } from '../errors.js';
import { PACKAGE_VERSION } from '../paths.js';
import { benchCommands } from './commands/bench.js';
import { characterizeCommands } from './commands/characterize.js';
import { daemonCommands } from './commands/daemon.js';
import { dashboardCommands } from './commands/dashboard.js';
import { demoCommands } from './commands/demo.js';
import { doctorCommands } from './commands/doctor.js';
import { explainCommands } from './commands/explain.js';
import { fleetCommands } from './commands/fleet.js';
import { flowspecCommands } from './commands/flowspec.js';
import { rsvpCommands } from './commands/rsvp.js';
import { tcCommands } from './commands/tc.js';
import { topCommands } from './commands/top.js';
import { inspectCommands } from './commands/inspect.js';
import { policyCommands } from './commands/policy.js';
import { rulesCommands } from './commands/rules.js';
import { agentPathCommand, runCommands } from './commands/run.js';
import { manpageCommand, serviceCommands } from './commands/service.js';

const program = new Command('qos')
  .description('Quality of service for unmodified applications: marks their sockets by per-machine policy.')
  .version(PACKAGE_VERSION)
  .showHelpAfterError()
  .enablePositionalOptions()
  .exitOverride();

// in this order: the help lists the commands as they are registered
daemonCommands(program);
runCommands(program);
inspectCommands(program);
dashboardCommands(program);
rulesCommands(program);
serviceCommands(program);
policyCommands(program);
benchCommands(program);
characterizeCommands(program);
flowspecCommands(program);
fleetCommands(program);
rsvpCommands(program);
tcCommands(program);
topCommands(program);
demoCommands(program);
doctorCommands(program);
explainCommands(program);
agentPathCommand(program);
manpageCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : 64;
  } else {
    if (e instanceof QosError) {
      process.stderr.write(`qos: ${e.message}\n`);
      if (e.problems.length) process.stderr.write(formatProblems(e.problems) + '\n');
    } else {
      process.stderr.write(`qos: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    }
    process.exitCode = exitCodeFor(e);
  }
}
