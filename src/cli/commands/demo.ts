/* `qos demo`: the paper's experiment in network namespaces (demo/; docs/demo.md). */

import { Command } from 'commander';
import { writeFileAtomic } from '../../atomic-file.js';
import { QosError } from '../../errors.js';
import { print } from '../format.js';
import { bitRate, positiveInt } from '../options.js';

/** Registers `qos demo`. */
export function demoCommands(program: Command): void {
  program
    .command('demo')
    .description("the paper's experiment, measured: an unmodified media application sends across a congested, precedence-queued link, without and then with the policy daemon, over IPv4 or IPv6 (needs root; builds and removes its own network namespaces)")
    .option('--app <name>', 'the media source: media (a video-like UDP stream + TCP call control) or iperf3 (iperf3 -u)', 'media')
    .option('--family <4|6>', 'IP version of the run: 4 or 6 (every host has both; the router classifies both)', '4')
    .option('--scheduler <kind>', "the router's queueing: wfq (weighted classes by precedence) or priority (strict)", 'wfq')
    .option('--weights <list>', 'wfq weights of precedence 0..7, comma-separated', '1,2,3,4,5,6,7,8')
    .option('--cycles <n>', 'cross-traffic bursts per run', (v) => positiveInt(v, '--cycles'), 4)
    .option('--on-ms <ms>', 'length of a burst', (v) => positiveInt(v, '--on-ms'), 2000)
    .option('--off-ms <ms>', 'pause between bursts', (v) => positiveInt(v, '--off-ms'), 2000)
    .option('--warmup-ms <ms>', 'media alone before the first burst', (v) => positiveInt(v, '--warmup-ms'), 2000)
    .option('--bottleneck <rate>', 'rate of the congested link (bits/s; k, M, G suffixes)', '10M')
    .option('--access <rate>', 'rate of the access links', '100M')
    .option('--queue <packets>', "packets each of the router's class queues holds", (v) => positiveInt(v, '--queue'), 100)
    .option('--kbps <n>', 'media rate in kbit/s', (v) => positiveInt(v, '--kbps'), 400)
    .option('--fps <n>', 'media frames per second', (v) => positiveInt(v, '--fps'), 25)
    .option('--reserve', 'a third run, "reserved": the media\'s datagrams reserved by RSVP (Controlled Load, a policy `reserve` on the source host, AutoRESV at the sink) through `qos rsvp router`, which queues the bottleneck in place of the precedence classes; best effort until the Resv, then reserved and marked')
    .option('--json <file>', 'write every figure as JSON to FILE (- for standard output)')
    .option('--report <dir>', 'write a report into DIR: index.html (the table and charts, linking the images) and each chart as SVG; with Chromium installed, each chart as PNG too and the whole page as index.png')
    .action(async (o: { app: string; family: string; scheduler: string; weights: string; cycles: number; onMs: number; offMs: number; warmupMs: number; bottleneck: string; access: string; queue: number; kbps: number; fps: number; reserve?: boolean; json?: string; report?: string }) => {
      if (o.app !== 'media' && o.app !== 'iperf3') throw new QosError('QOS_ERR_USAGE', `--app takes media or iperf3, not "${o.app}"`);
      if (o.family !== '4' && o.family !== '6') throw new QosError('QOS_ERR_USAGE', `--family takes 4 or 6, not "${o.family}"`);
      if (o.scheduler !== 'wfq' && o.scheduler !== 'priority') throw new QosError('QOS_ERR_USAGE', `--scheduler takes wfq or priority, not "${o.scheduler}"`);
      const weights = o.weights.split(',').map((w) => Number(w.trim()));
      if (weights.length !== 8 || weights.some((w) => !Number.isInteger(w) || w < 1 || w > 1000)) throw new QosError('QOS_ERR_USAGE', `--weights takes eight whole numbers 1..1000 (precedence 0 first), not "${o.weights}"`);
      const { runDemo } = await import('../../demo/demo.js');
      const { formatDemo } = await import('../../demo/table.js');
      const toStdout = o.json === '-';
      const r = await runDemo({
        app: o.app, family: o.family === '6' ? 6 : 4, scheduler: o.scheduler, weights, cycles: o.cycles, onMs: o.onMs, offMs: o.offMs, warmupMs: o.warmupMs,
        bottleneckBps: bitRate(o.bottleneck, '--bottleneck'), accessBps: bitRate(o.access, '--access'), queuePackets: o.queue, kbps: o.kbps, fps: o.fps,
        progress: (m) => process.stderr.write(`${m}\n`),
      }, o.reserve ? ['unmarked', 'marked', 'reserved'] : ['unmarked', 'marked']);
      if (o.json) {
        const text = JSON.stringify(r, null, 2) + '\n';
        if (toStdout) process.stdout.write(text);
        else writeFileAtomic(o.json, text);
      }
      if (o.report) {
        const { writeReport } = await import('../../demo/report.js');
        const files = await writeReport(r, o.report);
        process.stderr.write(`report: ${files.join(', ')}\n`);
      }
      if (!toStdout) print(formatDemo(r));
    });
}
