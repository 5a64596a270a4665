import { z } from 'zod'

/** The sensor network API's error body, as the reference (FastAPI) sends it. */
export const Detail = z.object({ detail: z.string() })
