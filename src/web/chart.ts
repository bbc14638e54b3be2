/* A uPlot chart that takes its container's width (and follows it when the window is resized),
 * as the demo's report draws its charts (src/demo/report.ts). uPlot sizes its canvas through
 * element.style, which the dashboard's CSP allows (it forbids style attributes in markup). */

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export type { default as uPlot } from 'uplot';

export interface ChartOptions {
  title?: string;
  height?: number;
  series: uPlot.Series[];
  axes?: uPlot.Axis[];
  scales?: uPlot.Scales;
  /** x is time in seconds (the default) or a plain number */
  time?: boolean;
  hooks?: uPlot.Hooks.Arrays;
}

export class Chart {
  readonly plot: uPlot;
  private readonly observer: ResizeObserver;

  constructor(readonly container: HTMLElement, o: ChartOptions, data: uPlot.AlignedData) {
    const width = Math.max(200, container.clientWidth || 600);
    this.plot = new uPlot({
      width, height: o.height ?? 220, title: o.title, series: [{}, ...o.series],
      axes: o.axes, scales: { x: { time: o.time ?? true }, ...o.scales }, hooks: o.hooks,
      legend: { live: true },
    }, data, container);
    this.observer = new ResizeObserver(() => {
      const w = Math.max(200, container.clientWidth);
      if (w !== this.plot.width) this.plot.setSize({ width: w, height: this.plot.height });
    });
    this.observer.observe(container);
  }

  setData(data: uPlot.AlignedData): void {
    this.plot.setData(data);
  }

  destroy(): void {
    this.observer.disconnect();
    this.plot.destroy();
  }
}
