"""Helpers the media extractors share: probing, segmenting, transcription, OCR, image features."""

import av

# FFmpeg prints per-file encoder statistics (x264, aac) at INFO; in a worker that floods the log.
av.logging.set_level(av.logging.ERROR)
