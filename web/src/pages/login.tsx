import { useState } from 'preact/hooks'
import { api, session } from '../api.ts'

/** Sign up or log in: either gives a token, kept for this browser session. */
export function LoginPage () {
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<string | null>(null)

  const submit = (path: '/authentication' | '/users') => async (event: Event) => {
    event.preventDefault()
    // Sign up is a plain button: the form's own checks (required, minLength) run only on a submit.
    const target = event.currentTarget
    if (target instanceof HTMLButtonElement && target.form?.reportValidity() === false) return
    setError(null)
    try {
      const result = await api<{ access_token: string }>('POST', path, { username, password })
      session.set(result.access_token)
      location.hash = '#/'
      location.reload()
    } catch (failure) {
      setError((failure as Error).message)
    }
  }

  return (
    <main class="login">
      <h1>devicelog</h1>
      <form onSubmit={submit('/authentication')}>
        <label>Username <input name="username" autocomplete="username" required value={username} onInput={e => setUsername(e.currentTarget.value)} /></label>
        <label>Password <input name="password" type="password" autocomplete="current-password" required minLength={8} value={password} onInput={e => setPassword(e.currentTarget.value)} /></label>
        {error !== null && <p class="error" role="alert">{error}</p>}
        <div class="row">
          <button type="submit">Log in</button>
          <button type="button" class="secondary" onClick={submit('/users')}>Sign up</button>
        </div>
      </form>
    </main>
  )
}
