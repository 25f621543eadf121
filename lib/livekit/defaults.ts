import { binding } from '../internal/binding'

/**
 * The native LiveKit client's defaults and bounds, read from the crate
 * (`capstan_livekit::room`, `::track`) when this entry point loads: connect and request
 * timeouts, the room's packet queue, Opus bitrate per channel and complexity, the input
 * rates Opus takes, and the client's error codes.
 */
export const LIVEKIT_CONTRACT = binding.livekitContract()
