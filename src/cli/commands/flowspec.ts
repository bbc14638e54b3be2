/* `qos flowspec`: the GQoS FLOWSPEC model without a daemon: the codec templates, one template
 * with its derivation, and a FLOWSPEC checked against the seed's rules with its actual token
 * rate (flowspec/; docs/flowspec.md). */

import { Command } from 'commander';
import { exitCodeFor, QosError } from '../../errors.js';
import type { Framing } from '../../flowspec/overhead.js';
import { print } from '../format.js';

const UNITS = 'Rates are bytes/s when bare, or bit, kbit, Mbit, Gbit, B, kB, MB, GB per second (1.5Mbit, 200kB); sizes are bytes when bare, or B, kB, MB, KiB, MiB; times are microseconds when bare, or us, ms, s (20ms); "not-specified" leaves a field to its default (QOS_NOT_SPECIFIED).';

function framing(o: { proto?: string; ipv6?: boolean }): Framing {
  if (o.proto !== undefined && o.proto !== 'udp' && o.proto !== 'tcp') throw new QosError('QOS_ERR_USAGE', `--proto takes udp or tcp, not "${o.proto}"`);
  return { proto: (o.proto ?? 'udp') as Framing['proto'], ipv6: !!o.ipv6 };
}

/** Registers `qos flowspec` and its subcommands. */
export function flowspecCommands(program: Command): void {
  const flowspec = program
    .command('flowspec')
    .description('the GQoS FLOWSPEC: a token bucket (TokenRate bytes/s, TokenBucketSize bytes, PeakBandwidth bytes/s), delay bounds (Latency, DelayVariation in microseconds), a ServiceType and packet sizes (MaxSduSize, MinimumPolicedSize in bytes); templates by codec (docs/flowspec.md)');
  flowspec
    .command('templates')
    .description('list the FLOWSPEC templates by codec name (G711, G723.1, G729, GSM6.10, H261QCIF, H261CIF, H263QCIF, H263CIF), each derived from the codec\'s bit rate, packet interval and RTP/UDP/IP headers')
    .option('--json', 'print one JSON array: each template\'s name, codec and FLOWSPEC (fields as in the FLOWSPEC structure, TokenRate in bytes/s, null for not specified)')
    .action(async (o: { json?: boolean }) => {
      const { TEMPLATES } = await import('../../flowspec/templates.js');
      const { flowSpecJson, formatTemplates } = await import('../../flowspec/format.js');
      print(o.json ? JSON.stringify(TEMPLATES.map((t) => ({ name: t.name, codec: t.codec, flowspec: flowSpecJson(t.spec) })), null, 2) : formatTemplates(TEMPLATES));
    });
  flowspec
    .command('show')
    .description('one template: its FLOWSPEC (TokenRate and PeakBandwidth in bytes/s, sizes in bytes, Latency and DelayVariation in microseconds), its actual token rate over UDP, and how each value is derived from the codec')
    .argument('<name>', 'a template name, in any case (g711, h263cif)')
    .option('--ipv6', 'compute the actual token rate for UDP over IPv6 (48 bytes of headers per packet instead of 28)')
    .option('--json', 'print one JSON object: name, codec, flowspec (keys TokenRate, TokenBucketSize, ...; null for not specified), actual (the actual token rate), derivation')
    .action(async (name: string, o: { ipv6?: boolean; json?: boolean }) => {
      const { templateNamed } = await import('../../flowspec/templates.js');
      const { actualRateJson, flowSpecJson, formatTemplate } = await import('../../flowspec/format.js');
      const t = templateNamed(name);
      const f = framing({ proto: 'udp', ipv6: o.ipv6 });
      print(o.json
        ? JSON.stringify({ name: t.name, codec: t.codec, flowspec: flowSpecJson(t.spec), actual: actualRateJson(t.spec, f), derivation: t.derivation }, null, 2)
        : formatTemplate(t, f));
    });
  flowspec
    .command('check')
    .description(`check a FLOWSPEC against the rules (PeakBandwidth >= TokenRate, TokenBucketSize >= MaxSduSize, MinimumPolicedSize <= MaxSduSize, a token bucket for ControlledLoad and Guaranteed, none for NoTraffic) and print it with its actual token rate, (1 + headers / MinimumPolicedSize) x TokenRate. Starts from --template, or from every field not specified. ${UNITS}`)
    .option('--template <name>', 'start from this template (qos flowspec templates); the options below change its fields')
    .option('--token-rate <rate>', 'TokenRate: the average rate the application sends, bytes/s')
    .option('--bucket <size>', 'TokenBucketSize: the largest burst sent at once, bytes')
    .option('--peak <rate>', 'PeakBandwidth: the highest rate packets leave at, bytes/s (not specified: no limit)')
    .option('--latency <time>', 'Latency: the longest acceptable delay, microseconds')
    .option('--jitter <time>', 'DelayVariation: the largest acceptable difference between delays, microseconds')
    .option('--service-type <type>', 'ServiceType: BestEffort, ControlledLoad, Guaranteed, Qualitative, NetworkControl, NoTraffic or NotSpecified (any case; controlled-load)')
    .option('--max-sdu <size>', 'MaxSduSize: the largest packet of application data, bytes')
    .option('--min-policed <size>', 'MinimumPolicedSize: a smaller packet counts as this many bytes; set it to the average packet size, bytes')
    .option('--proto <proto>', 'udp or tcp: the headers each packet carries, for the actual token rate (default: udp)')
    .option('--ipv6', 'the packets are IPv6 (20 bytes more of headers per packet)')
    .option('--json', 'print one JSON object: ok, template, flowspec (keys TokenRate, ...; null for not specified), actual (the actual token rate); on an error ok false and the error with each problem')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const { parseFlowSpec } = await import('../../flowspec/parse.js');
      const { templateNamed } = await import('../../flowspec/templates.js');
      const { actualRateJson, flowSpecJson, formatFlowSpec } = await import('../../flowspec/format.js');
      const f = framing(o as { proto?: string; ipv6?: boolean });
      const template = typeof o.template === 'string' ? templateNamed(o.template) : undefined;
      // commander's camelCase keys are the parser's aliases (tokenRate, maxSdu, minPoliced)
      const given = Object.fromEntries(['tokenRate', 'bucket', 'peak', 'latency', 'jitter', 'serviceType', 'maxSdu', 'minPoliced'].filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
      let spec;
      try {
        spec = parseFlowSpec(given, { base: template?.spec });
      } catch (e) {
        if (!(e instanceof QosError)) throw e;
        if (!o.json) throw new QosError(e.code, e.message); // the message has every problem: print them once
        print(JSON.stringify({ ok: false, error: e.toJSON() }, null, 2));
        process.exitCode = exitCodeFor(e);
        return;
      }
      print(o.json
        ? JSON.stringify({ ok: true, template: template?.name ?? null, flowspec: flowSpecJson(spec), actual: actualRateJson(spec, f) }, null, 2)
        : `${template ? `from template ${template.name}\n` : ''}${formatFlowSpec(spec, f)}`);
    });
}
