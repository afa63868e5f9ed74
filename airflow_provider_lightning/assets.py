"""Airflow Assets for Lightning teamspace drive paths: ``lightning://<owner>/<teamspace>/<drive path>``.

A task that writes a drive path (an upload, a training job's checkpoint) declares ``outlets=[drive_asset(...)]``;
a DAG with ``schedule=[drive_asset(...)]`` then runs whenever that path is updated. The URI mirrors the official
client's ``lit://<owner>/<teamspace>/<path>``; the ``lightning`` scheme is registered in the provider info with
:func:`sanitize_uri` as its handler, so Airflow normalises and checks every such URI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, unquote

if TYPE_CHECKING:
    from airflow.sdk import Asset

SCHEME = "lightning"


def drive_asset_uri(teamspace: str, path: str) -> str:
    """``lightning://<owner>/<teamspace>/<path>`` for a drive path; ValueError for a bad teamspace or path.

    :param teamspace: the teamspace as ``owner/teamspace``.
    :param path: a file or folder in its drive (``/teamspace/`` prefixes are accepted).
    """
    from airflow_provider_lightning.api.drive import drive_path
    from airflow_provider_lightning.api.teamspaces import split_teamspace

    owner, name = split_teamspace(teamspace)
    return f"{SCHEME}://{quote(owner)}/{quote(name)}/{quote(drive_path(path), safe='/')}"


def drive_asset(teamspace: str, path: str, *, name: str | None = None, group: str = "lightning",
                extra: dict[str, Any] | None = None) -> Asset:
    """An Airflow Asset for a teamspace drive path (use it in ``outlets=`` and in a DAG's ``schedule=``).

    :param teamspace: the teamspace as ``owner/teamspace``.
    :param path: a file or folder in its drive.
    :param name: the asset's name (default: its URI).
    :param group: the asset's group.
    :param extra: extra information stored with the asset.
    """
    from airflow.sdk import Asset

    uri = drive_asset_uri(teamspace, path)
    return Asset(name=name or uri, uri=uri, group=group, extra=extra or {})


def create_asset(*, teamspace: str, path: str, extra: dict[str, Any] | None = None) -> Asset:
    """The provider's asset factory (registered for the ``lightning`` scheme)."""
    return drive_asset(teamspace, path, extra=extra)


def parse_uri(uri: str) -> tuple[str, str]:
    """``(teamspace, drive path)`` of a ``lightning://`` URI; ValueError for any other URI."""
    from urllib.parse import urlsplit

    split = sanitize_uri(urlsplit(uri))
    owner = unquote(split.netloc)
    name, _, path = unquote(split.path.lstrip("/")).partition("/")
    return f"{owner}/{name}", path


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's URI handler for the scheme: ``lightning://<owner>/<teamspace>/<path>``, path normalised.

    Raises ValueError (which Airflow reports at DAG parse) for a URI without owner, teamspace or path, with a
    query or fragment, or with a path that leaves the drive.
    """
    from airflow_provider_lightning.api.drive import drive_path

    if uri.scheme != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URI: {uri.geturl()!r}")
    if not uri.netloc:
        raise ValueError(f"a {SCHEME}:// URI needs an owner: {SCHEME}://<owner>/<teamspace>/<path>")
    if uri.query or uri.fragment:
        raise ValueError(f"a {SCHEME}:// URI takes no query or fragment: {uri.geturl()!r}")
    teamspace, _, path = uri.path.lstrip("/").partition("/")
    if not teamspace or not path.strip("/"):
        raise ValueError(
            f"a {SCHEME}:// URI names a teamspace and a drive path: {SCHEME}://<owner>/<teamspace>/<path>, got "
            f"{uri.geturl()!r}"
        )
    clean = drive_path(unquote(path))
    return uri._replace(path=f"/{teamspace}/{quote(clean, safe='/')}")
