"""Documents with known clusters for the cluster tests: three topics, separated vectors, topic words.

Written straight into a collection's LanceDB table (the collection itself is real), so the right
grouping is known and no embedding model has to run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strataflow.index.records import StoredDocument
from strataflow.runtime import Runtime
from strataflow.store.tables import Collection

TOPICS = {
    "fruit": "apple banana orchard juicy fruit harvest",
    "space": "rocket orbit astronaut launch moon mission",
    "ocean": "whale coral reef tide ocean current",
}
PER_TOPIC = 20


def write_points(runtime: Runtime, collection_id: str) -> tuple[str, dict[str, str]]:
    """Documents around three separated centres; returns the vector column and each id's topic."""
    with runtime.db.read_session() as session:
        collection = session.get(Collection, collection_id)
        assert collection is not None
        index = collection.vector_indexes[0]["index"]
    column, dims = index["name"], int(index["dimensions"])
    rng = np.random.default_rng(7)
    truth: dict[str, str] = {}
    documents = []
    for number, (topic, words) in enumerate(TOPICS.items()):
        centre = np.zeros(dims)
        centre[number * 10 : (number + 1) * 10] = 5.0
        for i in range(PER_TOPIC):
            doc_id = f"doc_{topic}_{i:03d}"
            truth[doc_id] = topic
            documents.append(
                StoredDocument(
                    document_id=doc_id,
                    collection_id=collection_id,
                    payload={"text": f"{words} item {i}", "topic": topic},
                    vectors={column: (centre + rng.normal(0, 0.3, dims)).tolist()},
                )
            )
    runtime.index.upsert(collection_id, documents)
    return column, truth


def points_collection(client: Any, runtime: Runtime) -> dict[str, Any]:
    """A text collection named `points` holding the three topics; its id, feature URI and the truth."""
    from tests.collection_flows import make_bucket, text_collection

    make_bucket(client)
    collection = text_collection(
        client, "points", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    cid = collection["collection_id"]
    column, truth = write_points(runtime, cid)
    features = client.get(f"/v1/collections/{cid}/features").json()["features"]
    return {"collection_id": cid, "feature_uri": features[0]["feature_uri"], "column": column, "truth": truth}
