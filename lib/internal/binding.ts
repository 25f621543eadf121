import type * as Binding from '../../index'

/**
 * The native binding: the napi-rs loader at the package root picks the platform binary.
 * Everything here reaches the engine through this one module, and reads the core's shapes
 * (outcome layout, statuses, defaults, limits, error codes) from the one `contract()`.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const binding: typeof Binding = require('../../index.js')

/** The core's shapes, read once at load: nothing in lib/ restates them. */
export const CONTRACT = binding.contract()

export type { JsEvent, JsFailure, JsRoomEvent, NativeEncoded, NativeIncomingStream, NativeLocalTrack, NativeRemoteTrack, NativeRoom, NativeEngine, NativeGroup, NativeLedger, NativeMixer, NativeSource } from '../../index'
