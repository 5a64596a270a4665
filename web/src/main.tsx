import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { api, session } from './api.ts'
import { useReconnecting } from './live.ts'
import { momentOf } from './pages/as-of.tsx'
import { AuditPage } from './pages/audit.tsx'
import { DevicePage } from './pages/device.tsx'
import { LoginPage } from './pages/login.tsx'
import { NetworkPage } from './pages/network.tsx'
import { NetworksPage } from './pages/networks.tsx'
import './style.css'

/**
 * Hash routes: #/login, #/ (networks), #/networks/<id>, #/devices/<id>, #/audit; a device's page
 * takes a moment after `?` (#/devices/<id>?at=<ISO 8601> or ?position=<n>).
 */
function useRoute (): { path: string[], query: URLSearchParams } {
  const read = () => {
    const hash = location.hash.replace(/^#\/?/, '')
    const mark = hash.indexOf('?')
    const path = mark === -1 ? hash : hash.slice(0, mark)
    return {
      path: path.split('/').filter(part => part !== '').map(decodeURIComponent),
      query: new URLSearchParams(mark === -1 ? '' : hash.slice(mark + 1))
    }
  }
  const [route, setRoute] = useState(read)
  useEffect(() => {
    const changed = () => setRoute(read())
    addEventListener('hashchange', changed)
    return () => removeEventListener('hashchange', changed)
  }, [])
  return route
}

function App () {
  const { path: route, query } = useRoute()
  const reconnecting = useReconnecting()
  if (session.token === null || route[0] === 'login') return <LoginPage />

  const logOut = async () => {
    await api('DELETE', '/authentication').catch(() => undefined)
    session.clear()
    location.hash = '#/login'
  }
  let page
  if (route[0] === 'networks' && route[1] !== undefined) page = <NetworkPage networkId={route[1]} />
  else if (route[0] === 'devices' && route[1] !== undefined) page = <DevicePage deviceId={route[1]} moment={momentOf(query)} />
  else if (route[0] === 'audit') page = <AuditPage />
  else page = <NetworksPage />

  return (
    <>
      <header>
        <a class="brand" href="#/">devicelog</a>
        <nav>
          <a href="#/">Networks</a>
          <a href="#/audit">Audit</a>
          <button type="button" class="link" onClick={logOut}>Log out</button>
        </nav>
      </header>
      {reconnecting && <div class="banner" role="status">Connection lost: reconnecting…</div>}
      <main>{page}</main>
    </>
  )
}

render(<App />, document.getElementById('app')!)
