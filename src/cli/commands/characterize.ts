/* `qos characterize`: token-bucket curves of flows, from a capture file or live (characterize/;
 * docs/characterize.md). */

import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { parseRate } from '../../units.js';
import { print } from '../format.js';
import { duration, positiveInt } from '../options.js';

/** Registers `qos characterize`. */
export function characterizeCommands(program: Command): void {
  program
    .command('characterize')
    .description("token-bucket curves of flows, from a capture file (pcap or pcapng) or captured live: for each rate r the least bucket b the flow conforms to, the knee of the curve, and a suggested TSpec (docs/characterize.md)")
    .argument('[file]', 'a capture: tcpdump -w, or pcapng (not with --live)')
    .option('--flow <spec>', 'only these packets: field=value,... (proto, src, dst, sport, dport, host, port) or a flow key as printed, e.g. "udp 10.0.0.1:4000 > 10.0.0.2:5004"')
    .option('--app <name>', 'what the sockets of the programs with this name send (their 5-tuples from the kernel, now: with a file, the program must still be running)')
    .option('--rates <list>', 'rates to evaluate, comma-separated: bytes/s, or with a unit (bit, kbit, Mbit, Gbit, B, kB, MB, GB), e.g. 1.5Mbit (default: a grid from each flow\'s mean to its peak rate)')
    .option('--grid <n>', 'points of the default grid', (v) => positiveInt(v, '--grid'), 32)
    .option('--count', 'count packets, not bytes (b in packets, r in packets/s)')
    .option('--min-unit <bytes>', 'm: a smaller packet counts as m bytes', (v) => positiveInt(v, '--min-unit'))
    .option('--peak-window <ms>', 'window over which the peak rate p is measured', (v) => positiveInt(v, '--peak-window'), 10)
    .option('--json', 'print one JSON object')
    .option('--plot <file>', 'draw the largest flow\'s curve with its knee, and its traffic against the token bucket: file.svg, or file.png (needs Chromium)')
    .option('--live', 'capture with tcpdump instead of reading a file (needs root): what --flow or --app names, or every IP packet on --iface')
    .option('--iface <name>', 'with --live: the interface', 'any')
    .option('--netns <name>', 'with --live: capture (and look for --app) in this network namespace')
    .option('--duration <time>', 'with --live: how long to capture (e.g. 30s, 500ms, 2m)', '30s')
    .option('--refresh <time>', 'with --live: how often to print the on-line estimate', '30s')
    .option('--token-rate <rate>', 'with --live: the on-line bucket drains at this rate (e.g. 2Mbit) instead of the measured average')
    .option('--rate-window <time>', 'with --live: measure the average over this moving window instead of since the first packet')
    .option('--age <time>', 'with --live: how long the on-line estimate remembers a burst', '180s')
    .option('--hold <time>', 'with --live: how long a smaller estimate waits before it is re-advertised', '120s')
    .action(async (file: string | undefined, o: { flow?: string; app?: string; rates?: string; grid: number; count?: boolean; minUnit?: number; peakWindow: number; json?: boolean; plot?: string; live?: boolean; iface: string; netns?: string; duration: string; refresh: string; tokenRate?: string; rateWindow?: string; age: string; hold: string }) => {
      const { characterizationJson, characterizeFile, flowFilter } = await import('../../characterize/offline.js');
      const { formatCharacterization, formatSnapshot } = await import('../../characterize/format.js');
      const rates = o.rates?.split(',').map(parseRate);
      if (rates?.some((r) => !(r > 0))) throw new QosError('QOS_ERR_USAGE', '--rates: every rate must be above 0');
      const common = { rates, grid: o.grid, count: o.count, minUnit: o.minUnit, peakWindowS: o.peakWindow / 1000, cumulative: !!o.plot };
      let r: import('../../characterize/offline.js').CharacterizeResult;
      if (o.flow && o.app) throw new QosError('QOS_ERR_USAGE', 'give --flow or --app, not both');
      const live = await import('../../characterize/live.js');
      let socks: import('../../characterize/live.js').AppSocket[] | undefined;
      if (o.app) {
        socks = live.appSockets(o.app, o.netns);
        if (!socks.length) throw new QosError('QOS_ERR_NOT_FOUND', `no socket of a program named "${o.app}"${o.netns ? ` in ${o.netns}` : ''} (ss -tunap)`);
      }
      const select = o.flow ? flowFilter(o.flow) : socks ? live.appSelect(socks) : undefined;
      if (o.live) {
        if (file) throw new QosError('QOS_ERR_USAGE', 'give a file or --live, not both');
        const filter = socks ? live.bpfForApp(socks) : o.flow ? live.bpfForFlow(o.flow) : 'ip or ip6';
        r = await live.characterizeLive({
          ...common, select, iface: o.iface, netns: o.netns, filter,
          durationS: duration(o.duration, '--duration'), refreshS: duration(o.refresh, '--refresh'),
          online: { ...(o.tokenRate ? { rate: parseRate(o.tokenRate) } : {}), ...(o.rateWindow ? { windowS: duration(o.rateWindow, '--rate-window') } : {}), ageS: duration(o.age, '--age') },
          holdS: duration(o.hold, '--hold'),
          onSnapshot: o.json ? undefined : (s) => print(formatSnapshot(s, o.count ? 'packets' : 'bytes')),
          // on stderr, so that --json's output stays one object: from this line on, what is sent is caught
          onStart: () => process.stderr.write(`qos: capturing on ${o.iface}${o.netns ? ` in ${o.netns}` : ''} for ${o.duration}\n`),
        });
      } else {
        if (!file) throw new QosError('QOS_ERR_USAGE', 'give a capture file, or --live');
        r = await characterizeFile(file, { ...common, select });
      }
      for (const w of r.warnings) process.stderr.write(`qos: warning: ${w}\n`);
      const json = characterizationJson(r, o.flow ? 'packet matches --flow' : o.app ? `packet from ${o.app}` : 'IP packet');
      if (o.plot) {
        const { plotSvg, writePlot } = await import('../../characterize/plot.js');
        writePlot(o.plot, plotSvg(r.flows[0]!, r.cumulative!, r.unit));
      }
      print(o.json ? JSON.stringify(json, null, 2) : formatCharacterization(r));
    });
}
