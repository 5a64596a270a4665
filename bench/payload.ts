// The message every bench sensor sends, shared by the load, the probe and the log fill so that
// all of them weigh the same on the wire and on disk.

/** Unix seconds with milliseconds, as a sensor stamps its readings. */
export const nowSeconds = (): number => Date.now() / 1000

/** Three readings that vary with `i`, at most two decimals (their JSON stays short and exact). */
export function reading (i: number) {
  return {
    temperature_c: (1800 + (i * 7) % 700) / 100,
    humidity_pct: (400 + (i * 3) % 300) / 10,
    pressure_hpa: (100000 + (i * 11) % 3000) / 100
  }
}

/** `batch` measurements taken a millisecond apart from `timestamp` on. */
export function measurements (i: number, timestamp: number, batch = 1) {
  const items = []
  for (let j = 0; j < batch; j++) items.push({ revision: 0, timestamp: Math.round(timestamp * 1000 + j) / 1000, value: reading(i + j) })
  return items
}

/** A `measurements/<sensor id>` message. */
export const measurementsMessage = (i: number, timestamp: number, batch = 1): string =>
  JSON.stringify({ measurements: measurements(i, timestamp, batch) })

/** The mean size of a message (the readings vary its length by a few bytes). */
export function meanMessageBytes (batch: number): number {
  let bytes = 0
  for (let i = 0; i < 1000; i++) bytes += Buffer.byteLength(measurementsMessage(i, nowSeconds(), batch))
  return bytes / 1000
}
