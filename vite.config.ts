import { defineConfig } from 'vite'

// The web console: built from web/ into dist/web/, which the service serves at `/`.
export default defineConfig({
  root: 'web',
  base: '/',
  build: { outDir: '../dist/web', emptyOutDir: true, chunkSizeWarningLimit: 200 },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } }
})
