"""`multimodal_extractor` v1: a video or audio file becomes one document per segment.

Segments come from fixed intervals, scene cuts or silences. Each carries its
times, its own media file and (video) a thumbnail, and optionally the words
spoken in it (Whisper base), the text on its keyframe (Tesseract), text
embeddings of both (all-MiniLM-L6-v2), a colour/edge descriptor of its
keyframe and, with an operator-installed CLIP/SigLIP model (`vision_model`),
the model's embedding of its keyframe, which text queries reach through the
same model's text tower. A video without audio, and an audio file, both work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from PIL import Image
from pydantic import Field

from strataflow.extractors.base import (
    ExtractContext,
    ExtractedDocument,
    Extractor,
    ExtractorInput,
    ExtractorParams,
    InputField,
    OutputField,
    Resources,
    RowResult,
    VectorIndexSpec,
)
from strataflow.extractors.media.failures import require_file
from strataflow.extractors.media.frames import save_thumbnail
from strataflow.extractors.media.models_dir import default_models_dir
from strataflow.extractors.media.ocr import read_text
from strataflow.extractors.media.planning import SplitSettings, plan_segments, write_segment_files
from strataflow.extractors.media.probe import MediaInfo, probe_media
from strataflow.extractors.media.rows import blob, run_rows, stopped
from strataflow.extractors.media.segments import Segment
from strataflow.extractors.media.transcription import (
    WHISPER_MODEL_NAME,
    Transcript,
    join_words,
    transcribe,
    words_by_segment,
)
from strataflow.extractors.media.visual import DESCRIPTOR_DIMENSIONS, DESCRIPTOR_NAME, visual_descriptor
from strataflow.extractors.text_models import TEXT_MODELS, embed_texts
from strataflow.extractors.vision.encoder import prepare_image
from strataflow.extractors.vision.features import (
    MODEL_ALIASES,
    PARAMETER_HELP,
    chosen_model,
    embed_images,
    installed_specs,
    resolve_model,
    vision_spec,
)

_TEXT_MODEL = TEXT_MODELS["minilm"]
_CONTENT_TYPES = {".mp4": "video/mp4", ".m4a": "audio/mp4", ".mkv": "video/x-matroska", ".mka": "audio/x-matroska"}


class MultimodalParams(ExtractorParams):
    extractor_type: Literal["multimodal_extractor"] = "multimodal_extractor"
    split_method: Literal["time", "scene", "silence"] = "time"
    time_split_interval: float = Field(10.0, ge=0.5, description="Seconds per segment for split_method=time.")
    scene_detection_threshold: float = Field(
        0.06,
        gt=0.0,
        le=1.0,
        description="Smallest frame change that can be a cut, as a fraction of the largest possible change.",
    )
    scene_adaptive_ratio: float = Field(
        3.0, ge=1.0, description="A cut's change must also be this many times the neighbouring frames' average."
    )
    min_scene_duration: float = Field(0.5, ge=0.0, description="Seconds; shorter scenes merge into the next.")
    silence_db_threshold: int = Field(-40, le=0, description="dBFS below which audio counts as silence.")
    min_silence_duration: float = Field(0.5, gt=0.0, description="Seconds of silence that make a cut.")
    segment_mode: Literal["exact", "keyframe"] = Field(
        "exact",
        description="exact: re-encode, cuts at the planned times; keyframe: stream copy, cuts move "
        "to the next keyframe and the reported times say so.",
    )
    store_segments: bool = True
    enable_thumbnails: bool = True
    run_transcription: bool = False
    transcription_language: str | None = Field("en", description="ISO code, or 'auto'/null to detect.")
    run_transcription_embedding: bool = False
    run_ocr: bool = False
    run_ocr_embedding: bool = True
    run_visual_descriptor: bool = True
    vision_model: str | None = Field(
        None, validation_alias=MODEL_ALIASES, description=PARAMETER_HELP.format(what="keyframe of each video segment")
    )


class MultimodalExtractor(Extractor[MultimodalParams]):
    name: ClassVar[str] = "multimodal_extractor"
    version: ClassVar[str] = "v1"
    description: ClassVar[str] = (
        "Splits video or audio into segments (time, scene or silence) with segment files and thumbnails; "
        "optional Whisper transcription, OCR of keyframes, MiniLM text embeddings and a colour/edge "
        "descriptor of each keyframe."
    )
    params_model: ClassVar[type[ExtractorParams]] = MultimodalParams
    inputs: ClassVar[list[InputField]] = [
        InputField("video", "video", required=False, description="A video file (an audio file works too)."),
        InputField("audio", "audio", required=False, description="An audio file."),
    ]
    resources: ClassVar[Resources] = Resources(num_cpus=2.0, num_gpus=0.0, memory_mb=3072)
    # Whisper (CTranslate2) runs on CUDA when the context says so; a runner with GPUs may place it thus.
    gpu_resources: ClassVar[Resources] = Resources(num_cpus=2.0, num_gpus=0.5, memory_mb=3072)

    def __init__(self, models_dir: Path | None = None) -> None:
        self._models_dir = models_dir

    @property
    def models_dir(self) -> Path:
        return self._models_dir or default_models_dir()

    def complete_parameters(
        self, params: MultimodalParams, extractor_params: dict[str, Any] | None
    ) -> MultimodalParams:
        return params.model_copy(update={"vision_model": resolve_model(params.vision_model, extractor_params)})

    def output_fields(self, params: MultimodalParams) -> list[OutputField]:
        fields = [
            OutputField("segment_index", "integer", "Position of the segment in its source, from 0."),
            OutputField("start_time", "float", "Segment start, seconds from the start of the source."),
            OutputField("end_time", "float", "Segment end (exclusive), seconds."),
            OutputField("duration", "float", "end_time - start_time, seconds."),
            OutputField("media_type", "string", "video or audio."),
        ]
        if params.store_segments:
            fields.append(OutputField("video_segment_url", "video", "The segment's own file (video sources)."))
            fields.append(OutputField("audio_segment_url", "audio", "The segment's own file (audio sources)."))
        if params.enable_thumbnails:
            fields.append(OutputField("thumbnail_url", "image", "JPEG of the segment's keyframe (video only)."))
        if params.run_transcription:
            fields += [
                OutputField("transcription", "text", f"Words spoken in the segment ({WHISPER_MODEL_NAME})."),
                OutputField("transcription_language", "string", "Language Whisper heard or was told."),
                OutputField("transcription_words", "array", "[{word, start, end, probability}], seconds."),
            ]
        if params.run_ocr:
            fields.append(OutputField("ocr_text", "text", "Text read from the segment's keyframe (Tesseract)."))
        return fields

    def vector_indexes(self, params: MultimodalParams) -> list[VectorIndexSpec]:
        # The keyframe embedding first: it is the collection's primary feature, what a plain search box searches.
        specs = vision_spec(params.vision_model, "keyframe of a video segment")
        if params.run_transcription and params.run_transcription_embedding:
            specs.append(
                VectorIndexSpec(
                    "transcription_embedding",
                    _TEXT_MODEL.dimensions,
                    _TEXT_MODEL.model_name,
                    "Sentence embedding of the segment's transcript",
                )
            )
        if params.run_ocr and params.run_ocr_embedding:
            specs.append(
                VectorIndexSpec(
                    "ocr_embedding",
                    _TEXT_MODEL.dimensions,
                    _TEXT_MODEL.model_name,
                    "Sentence embedding of the text on the segment's keyframe",
                )
            )
        if params.run_visual_descriptor:
            specs.append(
                VectorIndexSpec(
                    "visual_descriptor",
                    DESCRIPTOR_DIMENSIONS,
                    DESCRIPTOR_NAME,
                    "Colour and edge histogram of the keyframe, for look-alike frames; not a semantic embedding",
                )
            )
        return specs

    def possible_vector_indexes(self) -> list[VectorIndexSpec]:
        return installed_specs("keyframe of a video segment") + self.vector_indexes(MultimodalParams.model_validate({}))

    def position_fields(self) -> list[str]:
        return ["start_time", "end_time"]

    def extract(self, rows: list[ExtractorInput], params: MultimodalParams, context: ExtractContext) -> list[RowResult]:
        return run_rows(rows, context, self.name, lambda row, scratch: self._extract_row(row, params, context, scratch))

    def _extract_row(
        self, row: ExtractorInput, params: MultimodalParams, context: ExtractContext, scratch: Path
    ) -> list[ExtractedDocument]:
        key = "video" if row.values.get("video") is not None else "audio"
        path = require_file(row.values.get(key), key)
        info = probe_media(path)
        split = _split_settings(params)
        segments = plan_segments(path, info, split, context.should_stop, context.limits.video_max_segments)
        model = chosen_model(params.vision_model)
        wants_frames = info.has_video and bool(
            params.enable_thumbnails or params.run_ocr or params.run_visual_descriptor or model
        )
        outputs = write_segment_files(
            path, info, segments, scratch, split, params.store_segments, wants_frames, context.should_stop
        )
        transcript = self._transcript(path, info, params, context)
        if context.should_stop():
            raise stopped()
        documents = []
        keyframes: list[tuple[ExtractedDocument, Path]] = []
        for segment in segments:
            if context.should_stop():
                raise stopped()
            documents.append(_segment_document(segment, info, params, outputs.files.get(segment.index)))
            keyframe = outputs.keyframes.get(segment.index)
            if keyframe is not None:
                _describe_keyframe(documents[-1], keyframe, params, scratch)
                keyframes.append((documents[-1], keyframe))
        if transcript is not None:
            _attach_transcript(documents, segments, transcript, params)
        _embed_texts(documents, params, context.device)
        if model is not None:
            _embed_keyframes(model, keyframes, context)
        return documents

    def _transcript(
        self, path: Path, info: MediaInfo, params: MultimodalParams, context: ExtractContext
    ) -> Transcript | None:
        if not params.run_transcription:
            return None
        if not info.has_audio:
            return Transcript()  # a silent video: no words, not a failure
        language = params.transcription_language
        if language is not None and language.lower() in ("", "auto"):
            language = None
        return transcribe(path, context.models_dir or self.models_dir, language, context.device, context.should_stop)


def _split_settings(params: MultimodalParams) -> SplitSettings:
    return SplitSettings(
        method=params.split_method,
        interval=params.time_split_interval,
        scene_threshold=params.scene_detection_threshold,
        scene_adaptive_ratio=params.scene_adaptive_ratio,
        min_scene_seconds=params.min_scene_duration,
        silence_db=params.silence_db_threshold,
        min_silence_seconds=params.min_silence_duration,
        mode=params.segment_mode,
    )


def _segment_document(
    segment: Segment, info: MediaInfo, params: MultimodalParams, segment_file: Path | None
) -> ExtractedDocument:
    start, end = round(segment.start, 3), round(segment.end, 3)
    document = ExtractedDocument(
        fields={
            "segment_index": segment.index,
            "start_time": start,
            "end_time": end,
            "duration": round(end - start, 3),
            "media_type": info.media_type,
        },
        position={"start_time": start, "end_time": end},
    )
    if segment_file is not None:
        field = "video_segment_url" if info.has_video else "audio_segment_url"
        content_type = _CONTENT_TYPES.get(segment_file.suffix, "application/octet-stream")
        document.blobs.append(blob(field, segment_file, "processed", info.media_type, content_type))
    return document


def _describe_keyframe(document: ExtractedDocument, keyframe: Path, params: MultimodalParams, scratch: Path) -> None:
    index = document.fields["segment_index"]
    if params.enable_thumbnails:
        thumbnail = save_thumbnail(keyframe, scratch / f"thumbnail_{index:05d}.jpg")
        document.blobs.append(blob("thumbnail_url", thumbnail, "thumbnail", "image", "image/jpeg"))
    if not (params.run_ocr or params.run_visual_descriptor):
        return
    with Image.open(keyframe) as image:
        if params.run_ocr:
            document.fields["ocr_text"] = read_text(image)
        if params.run_visual_descriptor:
            document.vectors["visual_descriptor"] = visual_descriptor(image)


def _attach_transcript(
    documents: list[ExtractedDocument], segments: list[Segment], transcript: Transcript, params: MultimodalParams
) -> None:
    grouped = words_by_segment(transcript.words, segments)
    for document, segment in zip(documents, segments, strict=True):
        words = grouped[segment.index]
        document.fields["transcription"] = join_words(words)
        document.fields["transcription_language"] = transcript.language or params.transcription_language
        document.fields["transcription_words"] = [
            {"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "probability": round(w.probability, 4)}
            for w in words
        ]


def _embed_texts(documents: list[ExtractedDocument], params: MultimodalParams, device: str) -> None:
    """One batch per text kind; a segment without text gets no vector rather than an empty-string one."""
    jobs: list[tuple[str, str]] = []
    if params.run_transcription and params.run_transcription_embedding:
        jobs.append(("transcription", "transcription_embedding"))
    if params.run_ocr and params.run_ocr_embedding:
        jobs.append(("ocr_text", "ocr_embedding"))
    for field, vector in jobs:
        targets = [d for d in documents if str(d.fields.get(field) or "").strip()]
        embedded = embed_texts([str(d.fields[field]) for d in targets], key="minilm", device=device)
        for document, values in zip(targets, embedded, strict=True):
            document.vectors[vector] = values.tolist()


def _embed_keyframes(model: str, keyframes: list[tuple[ExtractedDocument, Path]], context: ExtractContext) -> None:
    """Every keyframe of the file through the vision model, a batch at a time (a failure fails the row)."""
    batch = context.limits.vision_batch_size
    for start in range(0, len(keyframes), batch):
        if context.should_stop():
            raise stopped()
        items = []
        for document, path in keyframes[start : start + batch]:
            with Image.open(path) as frame:
                items.append((document, prepare_image(frame)))
        try:
            embed_images(model, items, context)
        finally:
            for _, image in items:
                image.close()


MULTIMODAL_EXTRACTOR = MultimodalExtractor()
