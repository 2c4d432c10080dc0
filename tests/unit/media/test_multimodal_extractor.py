"""multimodal_extractor on real media: cuts, segment files, Whisper words, OCR, embeddings, broken files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from strataflow.extractors.base import ErrorCategory, ExtractContext, ExtractorInput, RowResult
from strataflow.extractors.multimodal import MultimodalExtractor, MultimodalParams
from tests import media_factory as mf
from tests.unit.media.conftest import Media


def run(extractor: MultimodalExtractor, context: ExtractContext, params: MultimodalParams, **inputs: Path) -> RowResult:
    key, path = next(iter(inputs.items()))
    [result] = extractor.extract([ExtractorInput("row-1", {key: path})], params, context)
    assert result.error is None, result.error and result.error.message
    return result


def stream_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(container.duration) / av.time_base


@pytest.fixture(scope="module")
def extractor(models_dir: Path) -> MultimodalExtractor:
    return MultimodalExtractor(models_dir=models_dir)


@pytest.fixture(scope="module")
def full_run(extractor: MultimodalExtractor, media: Media, tmp_path_factory: pytest.TempPathFactory) -> RowResult:
    """Scene split with everything on: the one Whisper run of this module."""
    params = MultimodalParams(
        split_method="scene", run_transcription=True, run_transcription_embedding=True, run_ocr=True
    )
    context = ExtractContext(work_dir=tmp_path_factory.mktemp("full-run"))
    return run(extractor, context, params, video=media.video)


def test_scene_split_finds_the_three_hard_cuts(full_run: RowResult) -> None:
    times = [(d.fields["start_time"], d.fields["end_time"]) for d in full_run.documents]
    assert times == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0)]
    assert [d.position for d in full_run.documents] == [{"start_time": s, "end_time": e} for s, e in times]


def test_each_segment_has_its_own_exact_file_and_a_thumbnail(full_run: RowResult) -> None:
    for document in full_run.documents:
        blobs = {b.field: b for b in document.blobs}
        segment = blobs["video_segment_url"]
        assert segment.content_type == "video/mp4" and segment.role == "processed"
        assert stream_seconds(segment.path) == pytest.approx(2.0, abs=0.05)
        with av.open(str(segment.path)) as container:
            assert container.streams.video and container.streams.audio
        assert blobs["thumbnail_url"].path.read_bytes()[:2] == b"\xff\xd8"  # JPEG


def test_whisper_hears_the_sentence_at_the_right_times(full_run: RowResult) -> None:
    transcripts = [d.fields["transcription"].lower() for d in full_run.documents]
    heard = " ".join(transcripts)
    for word in ("quick", "brown", "fox", "lazy", "dog"):
        assert word in heard
    assert transcripts[0] == "" and transcripts[3] == ""  # a tone, then silence: no invented words
    words = [w for d in full_run.documents for w in d.fields["transcription_words"]]
    quick = next(w for w in words if "quick" in w["word"].lower())
    assert 3.0 <= quick["start"] <= 4.0  # speech starts at 3.0 s in the soundtrack
    for document in full_run.documents:
        for word in document.fields["transcription_words"]:
            middle = (word["start"] + word["end"]) / 2
            assert document.fields["start_time"] <= middle < document.fields["end_time"]
    assert {d.fields["transcription_language"] for d in full_run.documents} == {"en"}


def test_ocr_reads_the_text_shown_in_the_second_shot(full_run: RowResult) -> None:
    texts = [d.fields["ocr_text"] for d in full_run.documents]
    assert "STRATAFLOW" in texts[1]
    assert texts[0] == "" and texts[2] == ""


def test_text_vectors_are_real_unit_minilm_embeddings(full_run: RowResult) -> None:
    spoken = [d for d in full_run.documents if d.fields["transcription"]]
    assert spoken and all(len(d.vectors["transcription_embedding"]) == 384 for d in spoken)
    assert all("transcription_embedding" not in d.vectors for d in full_run.documents if not d.fields["transcription"])
    ocr_vector = np.array(full_run.documents[1].vectors["ocr_embedding"])
    assert np.linalg.norm(ocr_vector) == pytest.approx(1.0, abs=1e-4)
    descriptors = [np.array(d.vectors["visual_descriptor"]) for d in full_run.documents]
    assert all(len(v) == 128 and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4) for v in descriptors)
    assert float(descriptors[0] @ descriptors[3]) < 0.99  # different shots look different


def test_keyframe_mode_moves_cuts_to_keyframes_and_says_so(
    extractor: MultimodalExtractor, media: Media, context: ExtractContext
) -> None:
    # Keyframes every 2 s; cuts asked at 3 s and 6 s land on 4 s and 6 s.
    params = MultimodalParams(
        split_method="time", time_split_interval=3.0, segment_mode="keyframe", run_visual_descriptor=False
    )
    result = run(extractor, context, params, video=media.video)
    times = [(d.fields["start_time"], d.fields["end_time"]) for d in result.documents]
    assert times == [(0.0, 4.0), (4.0, 6.0), (6.0, 8.0)]
    segment = {b.field: b for b in result.documents[1].blobs}["video_segment_url"]
    assert segment.content_type == "video/x-matroska"
    assert stream_seconds(segment.path) == pytest.approx(2.0, abs=0.1)


def test_silence_split_on_an_audio_file(extractor: MultimodalExtractor, media: Media, context: ExtractContext) -> None:
    params = MultimodalParams(split_method="silence", silence_db_threshold=-40, min_silence_duration=0.5)
    result = run(extractor, context, params, audio=media.audio)
    assert len(result.documents) == 2
    first, second = result.documents
    assert first.fields["start_time"] == 0.0 and second.fields["end_time"] == pytest.approx(8.0, abs=0.05)
    assert 1.5 < first.fields["end_time"] == second.fields["start_time"] < 3.0  # inside the gap
    assert {d.fields["media_type"] for d in result.documents} == {"audio"}
    for document in result.documents:
        [segment] = document.blobs  # no thumbnail for sound
        assert segment.field == "audio_segment_url" and segment.content_type == "audio/mp4"
        assert stream_seconds(segment.path) == pytest.approx(document.fields["duration"], abs=0.05)
        assert document.vectors == {}


def test_a_video_without_audio_still_splits_and_transcribes_to_nothing(
    extractor: MultimodalExtractor, media: Media, context: ExtractContext
) -> None:
    params = MultimodalParams(split_method="scene", run_transcription=True, run_transcription_embedding=True)
    result = run(extractor, context, params, video=media.silent_video)
    assert len(result.documents) == 4
    assert all(d.fields["transcription"] == "" for d in result.documents)
    assert all("transcription_embedding" not in d.vectors for d in result.documents)


def test_broken_media_fail_their_rows_with_clear_categories(
    extractor: MultimodalExtractor, media: Media, context: ExtractContext
) -> None:
    rows = [
        ExtractorInput("empty", {"video": media.empty}),
        ExtractorInput("good", {"video": media.video}),
        ExtractorInput("truncated", {"video": media.truncated}),
        ExtractorInput("cut-short", {"video": media.cut_short}),
        ExtractorInput("png", {"video": media.png_as_mp4}),
        ExtractorInput("silence-on-mute", {"video": media.silent_video}),
        ExtractorInput("missing", {}),
    ]
    params = MultimodalParams(split_method="silence", run_visual_descriptor=False)
    results = {r.row_id: r for r in extractor.extract(rows, params, context)}
    assert [r.row_id for r in results.values()] == [row.row_id for row in rows]
    assert results["good"].error is None and len(results["good"].documents) == 2
    messages = {}
    for row_id, result in results.items():
        if row_id == "good":
            continue
        assert result.error is not None and result.error.category is ErrorCategory.VALIDATION, row_id
        assert not result.documents
        messages[row_id] = result.error.message
    assert "empty" in messages["empty"]
    assert "not a readable audio/video file" in messages["truncated"]
    assert "truncated or corrupt" in messages["cut-short"]
    assert "still image" in messages["png"]
    assert "no audio track" in messages["silence-on-mute"]
    assert "missing" in messages["missing"]


def test_only_the_files_documents_reference_are_left(
    extractor: MultimodalExtractor, media: Media, context: ExtractContext
) -> None:
    rows = [ExtractorInput("good", {"video": media.video}), ExtractorInput("bad", {"video": media.cut_short})]
    results = extractor.extract(rows, MultimodalParams(split_method="scene", run_ocr=True), context)
    referenced = {b.path.resolve() for r in results for d in r.documents for b in d.blobs}
    assert len(referenced) == 8  # four segment files, four thumbnails; keyframes and the bad row are gone
    assert mf.files_under(context.work_dir) == referenced


def test_a_stop_request_fails_the_remaining_rows_as_retryable(
    extractor: MultimodalExtractor, media: Media, tmp_path: Path
) -> None:
    context = ExtractContext(work_dir=tmp_path, should_stop=lambda: True)
    [result] = extractor.extract([ExtractorInput("r", {"video": media.video})], MultimodalParams(), context)
    assert result.error is not None and result.error.category.transient


def test_declared_vectors_have_the_true_dimensions(extractor: MultimodalExtractor) -> None:
    params = MultimodalParams(run_transcription=True, run_transcription_embedding=True, run_ocr=True)
    specs = {s.name: s for s in extractor.vector_indexes(params)}
    assert specs["transcription_embedding"].dimensions == 384
    assert specs["transcription_embedding"].model == "all-MiniLM-L6-v2"
    assert specs["ocr_embedding"].dimensions == 384
    assert specs["visual_descriptor"].dimensions == 128
    assert extractor.position_fields() == ["start_time", "end_time"]
    assert extractor.extractor_id == "multimodal_extractor_v1"
    assert extractor.vector_indexes(MultimodalParams(run_visual_descriptor=False)) == []


def test_an_audio_file_is_transcribed_with_its_language_detected(
    extractor: MultimodalExtractor, media: Media, context: ExtractContext
) -> None:
    params = MultimodalParams(
        split_method="time", time_split_interval=4.0, run_transcription=True, transcription_language="auto"
    )
    result = run(extractor, context, params, audio=media.audio)
    assert [(d.fields["start_time"], d.fields["end_time"]) for d in result.documents] == [(0.0, 4.0), (4.0, 8.0)]
    assert {d.fields["transcription_language"] for d in result.documents} == {"en"}
    assert "fox" in " ".join(d.fields["transcription"].lower() for d in result.documents)


def test_keyframes_without_segment_files(extractor: MultimodalExtractor, media: Media, context: ExtractContext) -> None:
    params = MultimodalParams(split_method="time", time_split_interval=4.0, store_segments=False)
    result = run(extractor, context, params, video=media.video)
    assert [[b.field for b in d.blobs] for d in result.documents] == [["thumbnail_url"], ["thumbnail_url"]]
    assert all(len(d.vectors["visual_descriptor"]) == 128 for d in result.documents)
