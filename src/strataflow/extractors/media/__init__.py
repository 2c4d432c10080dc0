"""Helpers the media extractors share: probing, segmenting, transcription, OCR, image features."""

import av

# FFmpeg prints per-file encoder statistics (x264, aac) at INFO; in a worker that floods the log.
# Set FFmpeg's own level (not a Python log callback, which can deadlock with decoder threads).
av.logging.set_libav_level(av.logging.ERROR)
