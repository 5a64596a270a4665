import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

const COLOURS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2']

export interface ChartProps {
  title: string
  /** Names of the lines. */
  series: string[]
  /** x (Unix seconds) then one array per line, as uPlot takes them. */
  data: number[][]
  /** x values are not times (category index). */
  plainX?: boolean
  /** With plainX: the label of each point (the reference's `time`, e.g. "02:05 PM"). */
  labels?: string[]
}

/** A line chart (uPlot: small, fast, no dependencies), as wide as its container. */
export function Chart ({ title, series, data, plainX = false, labels }: ChartProps) {
  const currentLabels = useRef(labels)
  currentLabels.current = labels
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const shape = series.join('\u0000')

  useEffect(() => {
    const element = box.current
    if (element === null) return
    const options: uPlot.Options = {
      title,
      width: Math.max(element.clientWidth, 280),
      height: 220,
      scales: { x: { time: !plainX } },
      // Point numbers are whole: no 0.2, 0.4 … ticks between them.
      ...(plainX ? { axes: [{ incrs: [1, 2, 5, 10, 20, 50, 100], values: (_u: uPlot, ticks: number[]) => ticks.map(i => currentLabels.current?.[i] ?? String(i)) }, {}] } : {}),
      series: [plainX ? { label: 'point', value: (_u: uPlot, i: number | null) => i === null ? '--' : currentLabels.current?.[i] ?? String(i) } : {}, ...series.map((label, i) => ({ label, stroke: COLOURS[i % COLOURS.length]!, width: 2 }))]
    }
    plot.current = new uPlot(options, data as uPlot.AlignedData, element)
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(element.clientWidth, 280), height: 220 }))
    resize.observe(element)
    return () => { resize.disconnect(); plot.current?.destroy(); plot.current = null }
  }, [shape, title])

  useEffect(() => { plot.current?.setData(data as uPlot.AlignedData) }, [data])

  return <div class="chart" ref={box} role="img" aria-label={title} data-points={data[0]?.length ?? 0} />
}
