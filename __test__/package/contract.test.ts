// The contract across the napi boundary is the core's: the outcome record layout, statuses,
// error codes and option defaults are read from `contract()`, errors carry the core's code
// in `code`, and events arrive as a `kind`-tagged union.
import { afterEach, describe, expect, it } from 'vitest'

import { AudioFrame, AudioSource, CapstanError, type AudioSourceOptions, type FrameProcessor } from '../../dist/index.js'
import { binding } from '../../dist/internal/binding.js'
import { __dispatchEvent } from '../../dist/internal/engine.js'
import { nativeOf } from '../../dist/source/source.js'
import { fromNative } from '../../dist/internal/errors.js'
import { readOutcome } from '../../dist/source/outcome.js'
import { readFrames, tracker } from '../helpers'

const t = tracker()
afterEach(() => t.closeAll())

const contract = binding.contract()

describe('contract()', () => {
  it('describes the outcome record: distinct slots, statuses in code order, pending one past the last', () => {
    const { slots, statuses, pending, completionRow } = contract
    const indices = [slots.status, slots.acceptedSamples, slots.droppedSamples, slots.queuedMs, slots.waitedMs, slots.id]
    expect(new Set(indices).size).toBe(indices.length)
    expect(Math.max(...indices)).toBe(slots.count - 1)
    expect(completionRow).toBe(slots.count + 1)
    expect(statuses).toEqual(['accepted', 'partial', 'dropped', 'timeout', 'aborted', 'cleared', 'closed'])
    expect(pending).toBe(statuses.length)
    const rec = new Float64Array(slots.count)
    rec[slots.status] = statuses.indexOf('timeout')
    rec[slots.acceptedSamples] = 1
    rec[slots.droppedSamples] = 2
    rec[slots.queuedMs] = 3
    rec[slots.waitedMs] = 4
    expect(readOutcome(rec)).toEqual({ status: 'timeout', acceptedSamples: 1, droppedSamples: 2, queuedMs: 3, waitedMs: 4 })
  })

  it('has the documented option defaults and every core error code', () => {
    expect(contract.defaults).toEqual({
      queueMs: 200,
      overflow: 'wait',
      deadlineMs: 1000,
      stallAfterMs: 250,
      consumer: 'realtime',
      fillSilence: true,
      prerollMs: 0,
      readerBufferMs: 50,
      processorBypassAfter: 5,
      processorBudgetMs: 5,
    })
    // The core's codes, then the native LiveKit client's (capstan-livekit's Error::CODES).
    expect([...contract.errorCodes].sort()).toEqual(['ERR_BUSY', 'ERR_CONNECT', 'ERR_FORMAT_MISMATCH', 'ERR_INVALID_FRAME', 'ERR_INVALID_OPTION', 'ERR_INVALID_STATE', 'ERR_PEER', 'ERR_RPC', 'ERR_SIGNAL', 'ERR_TIMEOUT'])
  })

  it('a source created without options gets the defaults', () => {
    const s = t.make({ sampleRate: 48000, channels: 1 })
    expect(s.consumer).toBe('realtime')
    // 200 ms of queue: a 300 ms frame under 'wait' through tryCaptureFrame is refused whole.
    expect(s.tryCaptureFrame(new Int16Array(14400)).status).toBe('dropped')
    expect(s.tryCaptureFrame(new Int16Array(9600)).status).toBe('accepted')
  })

  it('a JS processor is bypassed after the core default of consecutive failures', async () => {
    let calls = 0
    let enabled = true
    const failing: FrameProcessor<AudioFrame> = {
      isEnabled: () => enabled,
      setEnabled: (on) => void (enabled = on),
      process: () => {
        calls++
        throw new Error('boom')
      },
      close: () => undefined,
    }
    const s = t.make({ sampleRate: 16000, channels: 1, consumer: 'pull', processors: [failing] })
    for (let k = 0; k < 8; k++) s.tryCaptureFrame(new Int16Array(160))
    await readFrames(s.frames(), 8)
    expect(calls).toBe(contract.defaults.processorBypassAfter)
    expect(enabled).toBe(false)
  })
})

describe('errors carry the core code', () => {
  const bad = (o: Record<string, unknown>): CapstanError => {
    try {
      new AudioSource({ sampleRate: 48000, channels: 1, ...o } as unknown as AudioSourceOptions).close()
    } catch (e) {
      return e as CapstanError
    }
    throw new Error(`options ${JSON.stringify(o)} were accepted`)
  }

  it('the native error has the code in `code` and a plain message', () => {
    const e = bad({ queueMs: 15 })
    expect(e).toBeInstanceOf(CapstanError)
    expect(e.code).toBe('ERR_INVALID_OPTION')
    expect(e.message).toMatch(/^queueMs/)
    expect((e.cause as { code?: string }).code).toBe('ERR_INVALID_OPTION')
  })

  it('an option of the wrong type is ERR_INVALID_OPTION naming the option', () => {
    for (const [name, value] of [
      ['queueMs', '200'],
      ['deadlineMs', '100'],
      ['fillSilence', 'yes'],
      ['overflow', 1],
      ['consumer', true],
      ['processorBudgetMs', {}],
    ] as const) {
      const e = bad({ [name]: value })
      expect(e.code, name).toBe('ERR_INVALID_OPTION')
      expect(e.message, name).toContain(name)
    }
    const missing = (() => {
      try {
        new AudioSource({ channels: 1 } as AudioSourceOptions)
      } catch (e) {
        return e as CapstanError
      }
    })()
    expect(missing?.code).toBe('ERR_INVALID_OPTION')
    expect(missing?.message).toContain('sampleRate')
  })

  it('fromNative: a core code becomes a CapstanError; an error that is not capstan\'s passes unchanged', () => {
    const coded = Object.assign(new Error('queue busy'), { code: 'ERR_BUSY' })
    const mapped = fromNative(coded) as CapstanError
    expect(mapped).toBeInstanceOf(CapstanError)
    expect(mapped).toMatchObject({ code: 'ERR_BUSY', message: 'queue busy', cause: coded })
    const other = Object.assign(new Error('ERR_INVALID_FRAME: looks coded, is not'), { code: 'EPIPE' })
    expect(fromNative(other)).toBe(other)
  })
})

describe("'sink-error'", () => {
  it('a sink-error event from the engine is emitted with its message; metrics().sinkErrors counts', () => {
    const s = t.make({ sampleRate: 48000, channels: 1 })
    expect(s.metrics().sinkErrors).toBe(0)
    const seen: Array<{ message: string }> = []
    s.on('sink-error', (e) => seen.push(e))
    // The engine dispatcher's entry point, with the binding's event shape.
    __dispatchEvent(nativeOf(s).id, { kind: 'sink-error', message: 'reader buffer full' })
    expect(seen).toEqual([{ message: 'reader buffer full' }])
  })
})
