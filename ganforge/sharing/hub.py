"""Uploading an exported model folder to the Hugging Face Hub (``huggingface_hub``, an
optional dependency: ``pip install 'ganforge[hub]'``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.errors import GanforgeError, UsageError

#: ``owner/name`` as the Hub spells a repository id.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


class HubError(GanforgeError):
    """The Hub could not be reached or refused the upload (exit code 1); the exported
    folder is kept."""


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` when it looks like ``owner/name``, else one UsageError line."""
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith((".", "-")):
        raise UsageError(f"--push-to-hub {repo_id!r} is not a Hub repository id; use "
                         "OWNER/NAME, e.g. my-name/dcgan-digits")
    return repo_id


def hub_api() -> Any:
    """A ``huggingface_hub.HfApi``, or one UsageError line saying how to install it."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise UsageError("--push-to-hub needs huggingface_hub: pip install huggingface_hub "
                         "(or pip install 'ganforge[hub]')") from None
    return HfApi()


def push_to_hub(folder: Path, repo_id: str, files: Sequence[str], *, private: bool = False,
                commit_message: str = "Upload a ganforge export", api: Any = None) -> str:
    """Create the model repository ``repo_id`` if needed and upload ``files`` of
    ``folder`` (only those: anything else in the folder stays local). Returns the URL of
    the commit (or the repository). Any failure (offline, network, refused) is one
    :class:`HubError` line naming the repository, and ``folder`` is left as it is."""
    check_repo_id(repo_id)
    api = api if api is not None else hub_api()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                 allow_patterns=list(files), commit_message=commit_message)
    except Exception as exc:  # the Hub client raises many kinds: all are one line here
        first = (str(exc).splitlines() or [""])[0][:300]
        raise HubError(f"could not push to the Hugging Face Hub repository {repo_id!r}: "
                       f"{type(exc).__name__}: {first}; the exported folder is kept at "
                       f"{folder}") from None
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}")
