"""Tags and restore, the same routes for datasets and models: added to each one's router."""

from __future__ import annotations

from fastapi import APIRouter, Response

from data_platform.api.deps import LakeDep
from lakeapi.names import check_tag
from lakeapi.schemas import Restored, RestoreRequest, Tag, TagCreate, TagMove


def add_tag_routes(router: APIRouter, kind: str) -> None:
    """``GET/POST {prefix}/{id}/tags``, ``PUT/DELETE .../tags/{tag}``, ``POST .../restore``."""
    what = kind[:-1]

    @router.get("/{name}/tags", response_model=list[Tag], name=f"list_{what}_tags")
    def list_tags(name: str, lake: LakeDep) -> list[Tag]:
        """The tags, by name, with the version each is on."""
        return lake.tags(kind, name)

    @router.post("/{name}/tags", response_model=Tag, status_code=201, name=f"create_{what}_tag")
    def create_tag(name: str, req: TagCreate, lake: LakeDep) -> Tag:
        """Tag a version (409 ALREADY_EXISTS if the tag exists: move it with PUT)."""
        return lake.tag(kind, name, req.tag, req.version)

    @router.put("/{name}/tags/{tag}", response_model=Tag, name=f"move_{what}_tag")
    def move_tag(name: str, tag: str, req: TagMove, lake: LakeDep) -> Tag:
        """Put the tag on a version, creating it or moving it there."""
        return lake.tag(kind, name, check_tag(tag), req.version, move=True)

    @router.delete("/{name}/tags/{tag}", status_code=204, name=f"delete_{what}_tag")
    def delete_tag(name: str, tag: str, lake: LakeDep) -> Response:
        """Remove the tag; the version stays."""
        lake.untag(kind, name, check_tag(tag))
        return Response(status_code=204)

    @router.post("/{name}/restore", response_model=Restored, name=f"restore_{what}")
    def restore(name: str, req: RestoreRequest, lake: LakeDep) -> Restored:
        """Make an earlier version's content the latest, as a new version (nothing is
        rewritten)."""
        return lake.restore(kind, name, req.version)
