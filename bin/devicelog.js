#!/usr/bin/env node
// `npx devicelog ...`: the CLI is TypeScript, run through tsx like the service itself.
import { register } from 'tsx/esm/api'

register()
await import('../src/cli/devicelog.ts')
