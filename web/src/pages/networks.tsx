import { useEffect, useState } from 'preact/hooks'
import { api } from '../api.ts'

interface Network { network_identifier: string, network_name: string }

export function NetworksPage () {
  const [networks, setNetworks] = useState<Network[] | null>(null)
  const [name, setName] = useState('')
  const [error, setError] = useState<string | null>(null)
  const load = () => api<Network[]>('GET', '/networks').then(setNetworks, (e: Error) => setError(e.message))
  useEffect(() => { void load() }, [])

  const create = async (event: Event) => {
    event.preventDefault()
    try {
      await api('POST', '/networks', { network_name: name })
      setName('')
      await load()
    } catch (failure) { setError((failure as Error).message) }
  }

  return (
    <section>
      <h1>Networks</h1>
      {networks === null ? <p>Loading…</p> : networks.length === 0 ? <p>No network yet: create one.</p> : (
        <ul class="cards">
          {networks.map(n => <li key={n.network_identifier}><a href={`#/networks/${n.network_identifier}`}>{n.network_name}</a></li>)}
        </ul>
      )}
      <form class="row" onSubmit={create}>
        <label>New network <input name="network_name" required maxLength={200} value={name} onInput={e => setName(e.currentTarget.value)} /></label>
        <button type="submit">Create network</button>
      </form>
      {error !== null && <p class="error" role="alert">{error}</p>}
    </section>
  )
}
