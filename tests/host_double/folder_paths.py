"""``folder_paths`` of ComfyUI 0.3.75, reduced to the model-folder registry the pack uses.

``models_dir`` is ``<base>/models``; tests point it (or ``base_path``) at a temporary folder before
the pack registers its ``pasl`` folder. Listing is not cached (the host's cache is invalidated by
folder mtimes, so it lists the same files).
"""

from __future__ import annotations

import os

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

base_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_comfy_base")
models_dir = os.path.join(base_path, "models")

folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}
"""``name -> (folders, extensions)``; an empty extension set lists every file."""


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    """Register a folder; ``is_default`` puts (or moves) it first, otherwise it is appended."""
    if folder_name not in folder_names_and_paths:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())
        return
    paths = folder_names_and_paths[folder_name][0]
    if full_folder_path in paths:
        if is_default and paths[0] != full_folder_path:
            paths.remove(full_folder_path)
            paths.insert(0, full_folder_path)
    elif is_default:
        paths.insert(0, full_folder_path)
    else:
        paths.append(full_folder_path)


def get_folder_paths(folder_name: str) -> list[str]:
    return folder_names_and_paths[folder_name][0][:]


def _files_under(directory: str) -> list[str]:
    """Paths of all files below ``directory``, relative to it, ``.git`` folders skipped."""
    if not os.path.isdir(directory):
        return []
    found = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = [d for d in dirs if d != ".git"]
        found += [os.path.relpath(os.path.join(root, f), directory) for f in files]
    return found


def get_filename_list(folder_name: str) -> list[str]:
    """Sorted, de-duplicated file names (relative paths) in every folder of ``folder_name``."""
    folders, extensions = folder_names_and_paths[folder_name]
    names = set()
    for folder in folders:
        names.update(f for f in _files_under(folder) if not extensions or os.path.splitext(f)[-1].lower() in extensions)
    return sorted(names)


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The first existing file ``filename`` in the folders of ``folder_name``; ``None`` if none.
    ``filename`` cannot climb out of a folder (``..`` is resolved against ``/`` first, as the host does)."""
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for folder in folder_names_and_paths[folder_name][0]:
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    path = get_full_path(folder_name, filename)
    if path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return path
