"""The engine_cluster_build job: one run of a cluster, from vectors to groups, metrics and enrichment.

Order matters for "a failed run changes nothing": everything is computed and the per-document
results stored under the run's own key first; only then are source documents enriched, and the
run becomes the cluster's current one in the same transaction that marks it COMPLETED. A failure
or cancel after enrichment started puts the previous run's values back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from sqlalchemy import select
from threadpoolctl import threadpool_limits

from strataflow.clock import utcnow
from strataflow.engine.clusters import (
    attributes,
    composite,
    enrichment,
    face_merge,
    hierarchy,
    output_documents,
    preprocess,
    weights,
)
from strataflow.engine.clusters.algorithms import (
    centroids,
    choose_k,
    compact_labels,
    fit_labels,
    large_kmeans,
    streamed_kmeans,
)
from strataflow.engine.clusters.assign import Assigner
from strataflow.engine.clusters.keywords import class_tfidf_keywords, text_of
from strataflow.engine.clusters.layout import Previous, Projection, projection_key, stabilise
from strataflow.engine.clusters.metrics import quality
from strataflow.engine.clusters.vectors import CHUNK_ROWS, VectorSource, payloads, sample_points
from strataflow.engine.jobs import JobContext, JobOutcome, extend_lease
from strataflow.errors import StrataflowError
from strataflow.index.store import DocumentIndex
from strataflow.services.clusters.artifact import ArtifactWriter, artifact_key
from strataflow.services.clusters.events import run_changed
from strataflow.services.clusters.output_collection import output_collection_ids
from strataflow.services.clusters.rules import STREAMED_KMEANS_FROM, streams
from strataflow.services.clusters.runs import source_where
from strataflow.services.clusters.views import group_label
from strataflow.statuses import TERMINAL, Status
from strataflow.store.tables import Cluster, ClusterRun, Collection, Task
from strataflow.transitions import transition

log = logging.getLogger("strataflow.clusters")

SAMPLE = 20_000  # points the metrics, the projection and k-means seeding are computed on
STREAM_EPOCHS = 3
LEASE_EVERY_S = 15.0


class RunCanceled(Exception):
    """The run was canceled while it worked: stop, write nothing more."""


class Keeper:
    """Extends the task's lease now and then, and notices a cancel."""

    def __init__(self, context: JobContext, task: Task, run_id: str) -> None:
        self.context, self.task, self.run_id = context, task, run_id
        self.last = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last < LEASE_EVERY_S:
            return
        self.last = time.monotonic()
        extend_lease(self.context.db, self.task.task_id, self.task.lease_owner)
        self.check()

    def check(self) -> None:
        with self.context.db.read_session() as session:
            status = session.scalar(select(ClusterRun.status).where(ClusterRun.run_id == self.run_id))
        if status != Status.PROCESSING:
            raise RunCanceled(self.run_id)


def cluster_build_job(context: JobContext, task: Task) -> JobOutcome:
    spec = (task.inputs or [{}])[0]
    run_id, cluster_id = str(spec.get("run_id")), str(spec.get("cluster_id"))
    with context.db.transaction() as session:
        run = session.get(ClusterRun, run_id)
        cluster = session.get(Cluster, cluster_id)
        if run is None or cluster is None or run.status in TERMINAL:
            return JobOutcome(status=Status.CANCELED, error="the run was canceled or its cluster deleted")
        if run.status == Status.PROCESSING:  # a lost lease: start over
            transition(session, run, Status.PENDING, "its job was taken over")
        transition(session, run, Status.PROCESSING, f"task {task.task_id} started", started_at=utcnow())
        run_changed(session, run, cluster)
        session.flush()  # write the change before the rows leave the session
        session.expunge(cluster)
        session.expunge(run)
    keeper = Keeper(context, task, run_id)
    started = time.monotonic()
    try:
        with threadpool_limits(limits=context.settings.cluster_threads or None):
            result = _execute(context, cluster, run, keeper)
        keeper.check()
        _enrich_and_finish(context, cluster, run, result, keeper, time.monotonic() - started)
    except RunCanceled:
        return JobOutcome(status=Status.CANCELED, error="canceled")
    except Exception as exc:
        message = exc.message if isinstance(exc, StrataflowError) else f"{type(exc).__name__}: {exc}"
        log.exception("cluster run failed", extra={"run_id": run_id})
        _fail(context, run_id, message[:2000])
        return JobOutcome(
            status=Status.FAILED,
            error=message[:2000],
            outputs=[{"cluster_id": cluster_id, "run_id": run_id, "status": "FAILED"}],
        )
    return JobOutcome(
        status=Status.COMPLETED,
        outputs=[
            {
                "cluster_id": cluster_id,
                "run_id": run_id,
                "num_clusters": result["num_clusters"],
                "silhouette_score": result["metrics"].get("silhouette_score"),
            }
        ],
    )


def _fail(context: JobContext, run_id: str, message: str) -> None:
    with context.db.transaction() as session:
        run = session.get(ClusterRun, run_id)
        if run is not None and run.status not in TERMINAL:
            transition(session, run, Status.FAILED, "the run failed", error=message, completed_at=utcnow())
            run_changed(session, run)


def _collections(context: JobContext, cluster: Cluster) -> list[Collection]:
    with context.db.read_session() as session:
        rows = [session.get(Collection, cid) for cid in cluster.collection_ids]
        for row in rows:
            if row is not None:
                session.expunge(row)
    missing = [cid for cid, row in zip(cluster.collection_ids, rows, strict=True) if row is None]
    if missing:
        raise StrataflowError(f"Collection(s) {', '.join(missing)} of the cluster no longer exist")
    return [row for row in rows if row is not None]


def _execute(context: JobContext, cluster: Cluster, run: ClusterRun, keeper: Keeper) -> dict[str, Any]:
    index: DocumentIndex = context.services["index"]
    settings = run.settings
    collections = _collections(context, cluster)
    key = artifact_key(cluster.namespace_id, cluster.cluster_id, run.run_id)
    if cluster.cluster_type == "attribute":
        return attributes.run(index, context.blobs, collections, settings, key, keeper)
    if settings.get("source_execution_ids"):
        seed = int(settings.get("algorithm_params", {}).get("random_state", 0) or 0)
        return composite.run_composite(
            context.blobs, _runs(context, settings["source_execution_ids"]), settings, key, seed
        )
    columns: dict[str, dict[str, str]] = settings["columns"]
    source = VectorSource(
        index=index,
        collections=collections,
        columns=columns,
        feature_uris=list(settings["feature_uris"]),
        dimensions={u: int(d) for u, d in settings["dimensions"].items()},
        wheres={
            c.collection_id: source_where(c, list(columns[c.collection_id].values()), settings.get("filters"))
            for c in collections
        },
        normalize=bool(settings.get("normalize_features", True)),
        weights=dict(settings.get("feature_weights") or {}),
    )
    timings: dict[str, float] = {}
    clock = time.monotonic()
    source.count()
    seed = int(settings.get("algorithm_params", {}).get("random_state", 0) or 0)
    source.select(min(int(settings["points"]), source.total), seed)
    if source.points < 2:
        raise StrataflowError(f"Only {source.points} document(s) hold the feature: nothing to cluster")
    algorithm = str(settings["algorithm"])
    params = dict(settings.get("algorithm_params") or {})
    streamed = streams(algorithm, source.points, source.width)
    steps = list(settings.get("preprocessing_steps") or [])
    writer = ArtifactWriter()
    layout = _Layout(context, cluster, settings, seed)
    try:
        previous = _assign_source(context, settings)
        if previous is not None:
            fitted = _assign(source, settings, previous, writer, keeper, seed, layout)
        elif streamed:
            fitted = _fit_streamed(source, settings, algorithm, params, steps, writer, keeper, timings, seed, layout)
        else:
            fitted = _fit_in_memory(source, settings, algorithm, params, steps, writer, keeper, timings, seed, layout)
        assigner, sample, sample_labels, reports = fitted
        reports["layout_stability"] = layout.report
        keeper()
        groups = assigner.groups()
        metrics = quality(
            sample, np.asarray(sample_labels), assigner.sizes()[assigner.sizes() > 0], assigner.noise, seed
        )
        metrics.update(reports)
        _name_groups(index, groups)
        if previous is not None:  # assigned groups keep the names the earlier run gave them
            labels = {g["cluster_id"]: group_label(previous, g) for g in previous.groups}
            for group in groups:
                group["label"] = labels.get(group["cluster_id"], group["label"])
        writer.store(context.blobs, key)
        if layout.projection is not None:
            context.blobs.put_bytes(projection_key(key), layout.projection.to_json(), "application/json")
    finally:
        writer.close()
    timings["total_compute_s"] = time.monotonic() - clock
    timings["vectors_read"] = float(source.points)
    return {
        "num_clusters": len(groups),
        "num_points": writer.rows,
        "groups": groups,
        "metrics": metrics,
        "artifact_key": key,
        "timings": timings,
        "streamed": streamed,
    }


# The assigner that wrote every point, the metrics' sample and its labels, and what the run
# reports besides (auto's k selection, the hierarchy tree).
Fitted = tuple[Assigner, np.ndarray, np.ndarray, dict[str, Any]]


def _fit_streamed(
    source: VectorSource,
    settings: dict[str, Any],
    algorithm: str,
    params: dict[str, Any],
    steps: list[dict[str, Any]],
    writer: ArtifactWriter,
    keeper: Keeper,
    timings: dict[str, float],
    seed: int,
    layout: _Layout,
) -> Fitted:
    """Mini-batch k-means streamed from LanceDB; linear preprocessing is fitted on the sample and
    applied chunk by chunk, and the centres are mapped back to the feature space."""
    clock = time.monotonic()
    sample, keys = sample_points(source, SAMPLE, seed)
    timings["sample_s"] = time.monotonic() - clock
    keeper()
    learned = _learn_weights(source, settings, algorithm, params, sample, seed)
    if learned:
        source.weights = dict(learned["learned_weights"])
        sample = weights.weighted(sample, _widths(source), np.asarray(list(source.weights.values())))
    transform = preprocess.Linear(steps, sample)
    fitted_sample = transform(sample)
    auto = _auto(algorithm, params, fitted_sample, seed)
    model, shifts = streamed_kmeans(
        preprocess.TransformedSource(source, transform), params, fitted_sample, seed, STREAM_EPOCHS, keeper
    )
    timings["fit_s"] = time.monotonic() - clock - timings["sample_s"]
    timings["epochs"] = float(len(shifts))
    timings["last_epoch_shift"] = shifts[-1]
    centers = transform.inverse(model.cluster_centers_.astype(np.float32))
    assigner = Assigner(centers, layout(sample, keys), writer)
    for chunk in source.chunks():
        assigner.add(chunk.ids, chunk.collections, chunk.vectors, model.predict(transform(chunk.vectors)))
        keeper()
    reports: dict[str, Any] = {"auto_k_selection": auto} if auto else {}
    return assigner, sample, model.predict(fitted_sample), {**reports, **(learned or {})}


def _fit_in_memory(
    source: VectorSource,
    settings: dict[str, Any],
    algorithm: str,
    params: dict[str, Any],
    steps: list[dict[str, Any]],
    writer: ArtifactWriter,
    keeper: Keeper,
    timings: dict[str, float],
    seed: int,
    layout: _Layout,
) -> Fitted:
    """The selected points in one matrix; the algorithm fits the preprocessed points, the centroids
    and distances are of the original ones."""
    clock = time.monotonic()
    matrix, ids, cols = source.load()
    timings["read_s"] = time.monotonic() - clock
    keeper()
    sample_at = np.sort(np.random.default_rng(seed).choice(len(matrix), min(len(matrix), SAMPLE), replace=False))
    learned = _learn_weights(source, settings, algorithm, params, matrix[sample_at], seed)
    if learned:
        matrix = weights.weighted(matrix, _widths(source), np.asarray(list(learned["learned_weights"].values())))
    features = preprocess.transform_all(steps, matrix) if steps else matrix
    if steps:
        timings["preprocess_s"] = time.monotonic() - clock - timings["read_s"]
    auto = _auto(algorithm, params, features[sample_at], seed)
    reports: dict[str, Any] = {**({"auto_k_selection": auto} if auto else {}), **(learned or {})}
    fit_started = time.monotonic()
    if algorithm in ("kmeans", "auto") and len(features) > STREAMED_KMEANS_FROM:
        raw = large_kmeans(features, params, seed)
        timings["mini_batch"] = 1.0
    else:
        raw = fit_labels("kmeans" if algorithm == "auto" else algorithm, features, params, seed)
    labels, k = compact_labels(raw)
    merging = settings.get("face_cluster_merge") or {}
    if merging.get("enabled") and k > 1:
        evidence = face_merge.evidence_of(labels, k, payloads(source, list(zip(ids, cols, strict=True))), merging)
        merged, reports["face_cluster_merge"] = face_merge.merge(matrix, labels, k, evidence, merging)
        labels, k = compact_labels(merged)
    del features
    names: list[str] | None = None
    if settings.get("hierarchical"):
        labels, names, tree = hierarchy.subdivide(matrix, labels, int(settings.get("max_hierarchy_depth") or 3), seed)
        k = len(names)
        timings["hierarchy_levels"] = float(max((len(n.split("_sub_")) for n in names), default=1))
        reports["hierarchy"] = tree
    timings["fit_s"] = time.monotonic() - fit_started
    centers = centroids(matrix, labels, k, str(settings.get("effective_feature_method", "mean")))
    keys = [(ids[i], cols[i]) for i in sample_at.tolist()]
    assigner = Assigner(centers, layout(matrix[sample_at], keys), writer, names)
    for start in range(0, len(matrix), CHUNK_ROWS):
        end = start + CHUNK_ROWS
        assigner.add(ids[start:end], cols[start:end], matrix[start:end], labels[start:end])
    return assigner, matrix[sample_at], labels[sample_at], reports


def _runs(context: JobContext, run_ids: list[str]) -> list[ClusterRun]:
    with context.db.read_session() as session:
        rows = [session.get(ClusterRun, run_id) for run_id in run_ids]
        for row in rows:
            if row is not None:
                session.expunge(row)
    return [r for r in rows if r is not None and r.status == Status.COMPLETED]


def _widths(source: VectorSource) -> list[int]:
    return [source.dimensions[u] for u in source.feature_uris]


def _learn_weights(
    source: VectorSource,
    settings: dict[str, Any],
    algorithm: str,
    params: dict[str, Any],
    sample: np.ndarray,
    seed: int,
) -> dict[str, Any] | None:
    """multi_feature_strategy 'weighted' without weights: learn them on the sample (weights.py)."""
    config = settings.get("weight_learning")
    if not config or len(source.feature_uris) < 2:
        return None
    if algorithm == "auto":
        algorithm, params = "kmeans", {"n_clusters": int(params.get("min_clusters", 2))}
    return weights.learn(sample, _widths(source), list(source.feature_uris), algorithm, params, config, seed)


def _assign_source(context: JobContext, settings: dict[str, Any]) -> ClusterRun | None:
    run_id = settings.get("assign_from_run_id")
    if not run_id:
        return None
    with context.db.read_session() as session:
        run = session.get(ClusterRun, run_id)
        if run is None or run.status != Status.COMPLETED:
            raise StrataflowError(f"Run '{run_id}' whose centroids this run assigns to is gone")
        session.expunge(run)
    return run


def _assign(
    source: VectorSource,
    settings: dict[str, Any],
    previous: ClusterRun,
    writer: ArtifactWriter,
    keeper: Keeper,
    seed: int,
    layout: _Layout,
) -> Fitted:
    """Mode 'assign': no fit; each point joins the centroid it is most similar to (cosine), or is
    noise below `assignment_threshold`. Streams: memory is one chunk plus the centroids."""
    groups = [g for g in previous.groups if g.get("centroid")]
    centers = np.asarray([g["centroid"] for g in groups], dtype=np.float32)
    if centers.shape[1] != source.width:
        raise StrataflowError("The earlier run's centroids do not have this cluster's dimensions any more")
    unit = centers / np.maximum(np.linalg.norm(centers, axis=1, keepdims=True), 1e-12)
    threshold = float(settings.get("assignment_threshold", 0.5))

    def nearest(vectors: np.ndarray) -> np.ndarray:
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        similarity = (vectors / norms) @ unit.T
        best = similarity.argmax(axis=1)
        return np.where(similarity[np.arange(len(best)), best] >= threshold, best, -1)

    sample, keys = sample_points(source, SAMPLE, seed)
    assigner = Assigner(centers, layout(sample, keys), writer, [g["cluster_id"] for g in groups])
    for chunk in source.chunks():
        assigner.add(chunk.ids, chunk.collections, chunk.vectors, nearest(chunk.vectors))
        keeper()
    return (
        assigner,
        sample,
        nearest(sample),
        {"assigned_from_run_id": previous.run_id, "assignment_threshold": threshold},
    )


def _auto(algorithm: str, params: dict[str, Any], sample: np.ndarray, seed: int) -> dict[str, Any] | None:
    """`auto` picks k (silhouette over at most 5,000 sampled points) and runs k-means with it."""
    if algorithm != "auto":
        return None
    low, high = int(params.pop("min_clusters", 2)), int(params.pop("max_clusters", 10))
    k, scores = choose_k(sample[:5000], low, high, seed)
    params["n_clusters"] = k
    return {"criterion": "silhouette", "chosen_k": k, "scores": scores}


class _Layout:
    """The run's projection for the picture: PCA on the sample, kept stable against the cluster's
    current run as `layout_stability` asks (engine/clusters/layout.py); remembers what it did."""

    def __init__(self, context: JobContext, cluster: Cluster, settings: dict[str, Any], seed: int) -> None:
        self.context, self.cluster, self.settings, self.seed = context, cluster, settings, seed
        self.mode = str(settings.get("layout_stability") or "align")
        self.projection: Projection | None = None
        self.report: dict[str, Any] = {"requested": self.mode, "applied": "none", "reason": "no projection"}

    def __call__(self, sample: np.ndarray, keys: list[tuple[str, str]]) -> Projection:
        from sklearn.decomposition import PCA

        components = min(int(self.settings.get("vis_n_components") or 2), sample.shape[1], len(sample))
        pca = PCA(
            n_components=components,
            svd_solver="randomized" if components < min(sample.shape) else "auto",
            random_state=self.seed,
        )
        fresh = Projection.of_pca(pca.fit(sample))
        projection, applied, reason = stabilise(self.context.blobs, self.mode, fresh, sample, keys, self._previous())
        self.projection = projection
        self.report = {"requested": self.mode, "applied": applied, "reason": reason}
        return projection

    def _previous(self) -> Previous | None:
        if self.mode == "none" or not self.cluster.current_run_id:
            return None
        with self.context.db.read_session() as session:
            run = session.get(ClusterRun, self.cluster.current_run_id)
            if run is None or run.status != Status.COMPLETED or not run.artifact_key:
                return None
            return Previous(run.run_id, run.artifact_key)


def _name_groups(index: DocumentIndex, groups: list[dict[str, Any]]) -> None:
    """Keywords from the representatives' texts (c-TF-IDF); the label is the top three."""
    texts: dict[str, list[str]] = {}
    for group in groups:
        by_collection: dict[str, list[str]] = {}
        for doc, col in group["representatives"]:
            by_collection.setdefault(col, []).append(doc)
        texts[group["cluster_id"]] = [
            text_of(d.payload) for col, ids in by_collection.items() for d in index.get_many(col, ids)
        ]
    keywords = class_tfidf_keywords(texts)
    for group in groups:
        group["keywords"] = keywords.get(group["cluster_id"], [])
        group["label"] = ", ".join(group["keywords"][:3]) or f"Cluster {group['index']}"


def _enrich_and_finish(
    context: JobContext, cluster: Cluster, run: ClusterRun, result: dict[str, Any], keeper: Keeper, elapsed: float
) -> None:
    """Write the run's results where they go (source documents, output collection), then make it
    current; any failure before that takes back what this run wrote."""
    index: DocumentIndex = context.services["index"]
    previous = _previous(context, cluster.cluster_id)
    spec = enrichment.spec_of(cluster.cluster_id, run, result["artifact_key"], result["groups"])
    enriched = bool(run.settings.get("enrich_source"))
    outputs = _output_collections(context, cluster)

    def undo() -> None:
        if enriched:
            _roll_back(index, context, spec, previous)
        for output in outputs:
            output_documents.drop(index, output, run.run_id)

    try:
        uris = list(run.settings.get("feature_uris") or [])
        dimensions = {u: int(d) for u, d in (run.settings.get("dimensions") or {}).items()}
        for output in outputs:
            output_documents.write(
                index,
                context.blobs,
                output,
                run.run_id,
                spec.artifact_key,
                result["groups"],
                spec.labels,
                uris,
                keeper,
                dimensions=dimensions,
            )
            keeper.check()
        if enriched:
            enrichment.apply(index, context.blobs, spec, previous, keeper)
            keeper.check()
        _finish(context, cluster.cluster_id, run.run_id, result, enriched, elapsed)
    except BaseException:
        undo()
        raise
    for output in outputs:  # now current: the previous run's documents go
        output_documents.keep_only(index, output, run.run_id)


def _output_collections(context: JobContext, cluster: Cluster) -> list[Collection]:
    if cluster.cluster_type != "vector":
        return []
    found = []
    with context.db.read_session() as session:
        for collection_id in output_collection_ids(cluster.config):
            row = session.get(Collection, collection_id)
            if row is not None:
                session.expunge(row)
                found.append(row)
    return found


def _roll_back(
    index: DocumentIndex,
    context: JobContext,
    spec: enrichment.EnrichmentSpec,
    previous: enrichment.EnrichmentSpec | None,
) -> None:
    """Put the previous run's values back (or clear this run's, when there was none)."""

    def nothing() -> None:  # a restore is never canceled halfway
        return None

    try:
        if previous is not None:
            enrichment.apply(index, context.blobs, previous, spec, nothing)
        else:
            enrichment.clear(index, context.blobs, spec, nothing)
    except Exception:
        log.exception("rolling back cluster enrichment failed", extra={"run_id": spec.run_id})


def _previous(context: JobContext, cluster_id: str) -> enrichment.EnrichmentSpec | None:
    """The current (last completed) run's enrichment, if it enriched."""
    with context.db.read_session() as session:
        cluster = session.get(Cluster, cluster_id)
        current = session.get(ClusterRun, cluster.current_run_id) if cluster and cluster.current_run_id else None
        if current is None or not current.enriched or current.artifact_key is None or cluster is None:
            return None
        return enrichment.spec_of(cluster.cluster_id, current, current.artifact_key, current.groups)


def _finish(
    context: JobContext, cluster_id: str, run_id: str, result: dict[str, Any], enriched: bool, elapsed: float
) -> None:
    with context.db.transaction() as session:
        run = session.scalar(select(ClusterRun).where(ClusterRun.run_id == run_id).with_for_update())
        cluster = session.get(Cluster, cluster_id)
        if run is None or cluster is None or run.status != Status.PROCESSING:
            raise RunCanceled(run_id)
        transition(session, run, Status.COMPLETED, "clustering finished", completed_at=utcnow())
        run.num_clusters, run.num_points = result["num_clusters"], result["num_points"]
        run.groups, run.metrics, run.artifact_key = result["groups"], result["metrics"], result["artifact_key"]
        run.timings = {**result["timings"], "total_s": elapsed, "streamed": result["streamed"]}
        run.enriched = enriched
        cluster.current_run_id = run_id
        run_changed(session, run, cluster)
