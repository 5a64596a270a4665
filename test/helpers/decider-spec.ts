import type { Test } from 'tap'
// given/when/then for deciders: given past events (folded with evolve), when a command,
// then these events, or this error.

export interface Decider<Command, State, Event> {
  decide(command: Command, state: State): Event[]
  evolve(state: State, event: Event): State
  initialState(): State
}

type Assert = Pick<Test, 'same' | 'throws'>

export function deciderSpec<Command, State, Event> (decider: Decider<Command, State, Event>) {
  return (t: Assert) => ({
    given: (events: Event[]) => ({
      when: (command: Command) => {
        const run = () => decider.decide(command, events.reduce(decider.evolve, decider.initialState()))
        return {
          then: (expected: Event[]) => t.same(run(), expected),
          thenThrows: (error: object) => t.throws(run, error as Error)
        }
      }
    })
  })
}
