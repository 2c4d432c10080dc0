"""What a cluster trigger does when it fires: queue a run, as POST /v1/clusters/{id}/execute would."""

from __future__ import annotations

from strataflow.engine.jobs import JobContext
from strataflow.errors import BadRequestError
from strataflow.schemas.clusters import ExecuteClusterRequest
from strataflow.services.clusters.runs import execute_cluster
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Namespace, Trigger


def fire_cluster(context: JobContext, trigger: Trigger) -> str:
    """The task id of the queued run; a cluster still running (409) or gone (404) is a StrataflowError."""
    with context.db.session() as session:
        namespace = session.get(Namespace, trigger.namespace_id)
        if namespace is None:
            raise BadRequestError("The trigger's namespace no longer exists")
        scope = NamespaceScope(trigger.org_id, namespace.namespace_id, namespace.namespace_name)
        overrides = ExecuteClusterRequest.model_validate((trigger.execution_config or {}).get("config") or {})
        _, task = execute_cluster(
            session, context.services["index"], scope, trigger.target_id, overrides, trigger="schedule"
        )
        return task.task_id
