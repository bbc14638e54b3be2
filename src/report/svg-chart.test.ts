import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderSvg, ticks } from './svg-chart.js';

test('ticks are round numbers covering the range', () => {
  assert.deepEqual(ticks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(ticks(0.3, 1.2, 4), [0.5, 1]);
  assert.deepEqual(ticks(0, 1000, 4), [0, 500, 1000]);
  assert.deepEqual(ticks(5, 5), [5]);
});

test('an SVG chart draws its bands, points (not for null values), bars and lines, and escapes text', () => {
  const svg = renderSvg({
    id: 'c', title: 'delay <ms> & loss', xLabel: 'time (s)', yLabel: 'ms', x: [0, 1, 2], bands: [[0.5, 1.5]], yLog: true,
    series: [{ label: 'a', color: '#111', style: 'points', values: [1, null, 100] }, { label: 'b', color: '#222', style: 'bars', values: [3, 4, 5] }, { label: 'c', color: '#333', style: 'line', values: [1, 2, null] }],
  });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /delay &lt;ms&gt; &amp; loss/);
  assert.equal((svg.match(/<circle /g) ?? []).length, 2);
  assert.equal((svg.match(/fill="#222"\/>/g) ?? []).length, 3 + 1, 'three bars and the legend swatch');
  assert.equal((svg.match(/<path d="M[^"]*L[^"]*"/g) ?? []).length, 1);
  assert.equal((svg.match(/fill="#f4c7a1"/g) ?? []).length, 1);
});
