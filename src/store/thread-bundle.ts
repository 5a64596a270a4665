import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)

const LOADER_FLAGS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader'])

/**
 * The process's Node flags for a thread of the store, without its module loaders: a worker inherits
 * them, and each `--import` of a loader (tsx's, a test runner's) starts a loader thread of its own
 * and runs its hooks for every module (about 0.6 s a thread under tap). The bundle needs none, and
 * the threads that run TypeScript register tsx themselves.
 */
export function threadExecArgv (execArgv: readonly string[] = process.execArgv): string[] {
  const kept: string[] = []
  for (let i = 0; i < execArgv.length; i++) {
    const flag = execArgv[i]!
    const name = flag.split('=', 1)[0]!
    if (!LOADER_FLAGS.has(name)) kept.push(flag)
    else if (!flag.includes('=')) i++
  }
  return kept
}

const bundles = new Map<string, Promise<URL | undefined>>()

/**
 * The writer thread's code with the projections it folds, as one plain JavaScript file. A thread
 * started through tsx starts a loader thread of its own and compiles the whole module graph again
 * (about 0.3 s and tens of MB for each store opened); this bundle, built once per process with
 * esbuild, starts in milliseconds. Undefined where esbuild cannot build it: the thread then runs
 * through tsx (writer-thread.mjs), as before.
 */
export function writerBundle (projectionsModule: string): Promise<URL | undefined> {
  let bundle = bundles.get(projectionsModule)
  if (bundle === undefined) {
    bundle = build(projectionsModule).catch(() => undefined)
    bundles.set(projectionsModule, bundle)
  }
  return bundle
}

async function build (projectionsModule: string): Promise<URL> {
  const esbuild = await import('esbuild')
  const writer = fileURLToPath(new URL('./writer.ts', import.meta.url))
  const projections = fileURLToPath(projectionsModule)
  const result = await esbuild.build({
    stdin: {
      contents: `import * as projections from ${JSON.stringify(projections)}\nimport { runWriter } from ${JSON.stringify(writer)}\nrunWriter(projections)\n`,
      resolveDir: process.cwd(),
      loader: 'ts'
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    // CommonJS packages in the graph (@fastify/error) require Node's own modules.
    banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
    plugins: [{
      // The native addon (and pg, whose optional native half esbuild cannot resolve) stay packages of
      // their own, imported by their absolute paths (the bundle lives in the temp folder).
      name: 'native-addons',
      setup (plugin) {
        plugin.onResolve({ filter: /^(better-sqlite3|pg)$/ }, args => ({ path: pathToFileURL(require.resolve(args.path)).href, external: true }))
      }
    }]
  })
  // Its service process is not needed again: a long-running service keeps no compiler beside it.
  await esbuild.stop()
  const code = result.outputFiles[0]!.text
  const dir = join(tmpdir(), 'devicelog-threads')
  const file = join(dir, `writer-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`)
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true })
    // Written whole, then renamed: processes building the same bundle at once never read half of one.
    const partial = `${file}.${process.pid}.tmp`
    writeFileSync(partial, code)
    renameSync(partial, file)
    forgetOldBundles(dir, file)
  }
  return pathToFileURL(file)
}

/** Each version of the code writes its own bundle: those not written for a day are an older version's, and go. */
function forgetOldBundles (dir: string, current: string): void {
  const dayAgo = Date.now() - 24 * 60 * 60 * 1000
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    try {
      if (path !== current && statSync(path).mtimeMs < dayAgo) rmSync(path, { force: true })
    } catch { /* another process removed it first */ }
  }
}
