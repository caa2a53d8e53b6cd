//! WAV chunks: reading RIFF/WAVE (and RF64), planning the join, writing one WAV (RF64 past 4 GiB) with cue points.
