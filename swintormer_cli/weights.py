"""The model registry and where a model's weights come from.

``weights/registry.json`` lists each model: its file, sha256, what it is (preset, prior, training
window), its model card, and where it lives on the Hugging Face Hub (repo id, pinned revision) if it
was published there. The folder is installed with the package and never written to by default.

A second registry, in the user's weights folder (``user_weights_dir()``: ``$SWINTORMER_HOME/weights``, by
default ``<HF_HOME>/swintormer/weights``), holds what ``weights export`` writes; it is laid over the
embedded one (a user model of the same name wins, and so does the user's default when set).

Resolution order (``resolve_model``):
  1. ``--weights PATH``: a .safetensors file, or a folder holding one (a training checkpoint folder works);
  2. the file in the folder of the model's registry: the user's weights folder or the embedded ``weights/``;
  3. the Hugging Face cache, then the Hub, through ``huggingface_hub`` (it honours HF_HOME,
     HF_HUB_CACHE, HF_HUB_OFFLINE, HF_ENDPOINT and HF_TOKEN), at the pinned revision.
Every registered file's sha256 is checked before it is loaded; only safetensors files are ever loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from .checkpoint import CheckpointError, ModelBundle, load_model
from .config_dict import from_data
from .io import atomic_write_bytes, sha256_of

REGISTRY_FILE = "registry.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")


class WeightsError(Exception):
    """A model that cannot be found, fetched or trusted; the message is one line saying what to do."""


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_model_name(name: str) -> str:
    """A model name becomes file names (NAME.safetensors, NAME.md): letters, digits and ``._+-`` only."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name) or len(name) > 200:
        raise ValueError(
            f"model name {name!r} is not allowed: use letters, digits, '.', '_', '+' and '-' "
            "(it names files, so no path separators)"
        )
    return name


def inside_path(text: str, what: str) -> str:
    """A relative path read from data (a registry entry, a Hub file name) that stays inside its folder:
    no absolute path, no '..', no backslash; else ``ValueError``."""
    if not isinstance(text, str) or not text or "\0" in text or "\\" in text:
        raise ValueError(f"{what} {text!r} is not a relative file path")
    path = PurePosixPath(text)
    if path.is_absolute() or PureWindowsPath(text).drive or ".." in path.parts:
        raise ValueError(f"{what} {text!r} points outside its folder; refusing it")
    return text


def weights_dir() -> Path:
    """The embedded weights folder: inside the installed package, else the source checkout's weights/."""
    here = Path(__file__).resolve().parent
    installed = here / "_embedded_weights"
    if (installed / REGISTRY_FILE).is_file():
        return installed
    return here.parent / "weights"


def user_home() -> Path:
    """This tool's folder for what a user makes: ``$SWINTORMER_HOME``, else ``swintormer/`` in the Hugging Face
    home (``huggingface_hub``'s ``HF_HOME``: ``~/.cache/huggingface`` unless set)."""
    text = os.environ.get("SWINTORMER_HOME", "").strip()
    if text:
        return Path(text).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HOME).expanduser() / "swintormer"


def user_weights_dir() -> Path:
    """Where ``weights export`` writes by default, with its own registry.json (outside the installed package,
    so a reinstall keeps it)."""
    return user_home() / "weights"


_NOT_SAVED = ("folder", "origin")
"""RegistryEntry fields set from where the registry was found, never read from or written to it."""


@dataclass
class RegistryEntry:
    name: str
    file: str
    sha256: str = ""
    """Hex sha256 of the file; an entry without one is never loaded."""
    description: str = ""
    recipe: str | None = None
    """The training config that made the model (``swintormer train --config RECIPE``, relative to the source
    checkout; its last leg where a script chains several, which the model card names); benchmarks/speed.py trains
    the default model's."""
    preset: str = ""
    prior: str = "none"
    window: int | None = None
    kind: str | None = None
    """``blur-estimator`` for a blur estimator's file (``models/blur_estimator.py``); None: a deblurring model."""
    estimator: str | None = None
    """A deblurring model's blur estimator (a registered name) for the automatic scales; None: ``DEFAULT_ESTIMATOR``."""
    card: str | None = None
    hub: dict | None = None
    """{"repo_id": ..., "revision": <40-hex commit>, "filename": ...} when published."""
    scores: dict | None = None
    training: dict | None = None
    folder: Path | None = field(default=None, compare=False)
    """The folder of the registry it came from (its file is looked for there); not saved."""
    origin: str = field(default="embedded", compare=False)
    """``embedded`` (the package's folder, or a folder given explicitly) or ``user``; not saved."""

    @classmethod
    def from_dict(cls, name: str, data: dict) -> RegistryEntry:
        """An entry from its registry data; paths in it must stay inside the registry's folder (or the Hub
        repo), else ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError("its entry is not a JSON object")
        if "file" not in data:
            raise ValueError("its entry has no 'file'")
        # ``shift`` was written by `weights export --shift` before 0.1.1 and never read: tolerated, dropped.
        data = {k: v for k, v in data.items() if k != "shift"}
        entry = from_data(cls, data, "its entry", skip=_NOT_SAVED, name=name)
        inside_path(entry.file, "file")
        if entry.card is not None:
            inside_path(entry.card, "card")
        if entry.hub and entry.hub.get("filename") is not None:
            inside_path(entry.hub["filename"], "hub filename")
        return entry

    def to_dict(self) -> dict:
        saved = {f.name for f in dataclasses.fields(self)} - {"name", *_NOT_SAVED}
        return {k: v for k, v in self.__dict__.items() if k in saved and v is not None}

    @property
    def local_path(self) -> Path | None:
        """Where its file is when it is installed locally (the folder of its registry)."""
        return self.folder / self.file if self.folder is not None else None


@dataclass
class Registry:
    default: str | None
    models: dict[str, RegistryEntry]
    folder: Path
    """The folder ``save`` writes to: the given one, or the user's weights folder for the combined registry."""

    @classmethod
    def load(cls, folder: str | Path | None = None) -> Registry:
        """One folder's registry; without a folder, the embedded registry with the user's laid over it."""
        if folder:
            folder = Path(folder)
            return cls._read(folder, "user" if folder == user_weights_dir() else "embedded")
        embedded = cls._read(weights_dir(), "embedded")
        user = cls._read(user_weights_dir(), "user")
        return cls(user.default or embedded.default, {**embedded.models, **user.models}, user.folder)

    @classmethod
    def _read(cls, folder: Path, origin: str) -> Registry:
        path = folder / REGISTRY_FILE
        if not path.is_file():
            return cls(None, {}, folder)
        try:
            data = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WeightsError(f"{path}: not valid JSON ({exc})") from exc
        except OSError as exc:
            raise WeightsError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("models", {}), dict)
            or not isinstance(data.get("default"), (str, type(None)))
        ):
            raise WeightsError(f'{path}: not a model registry (expected {{"default": NAME, "models": {{...}}}})')
        models = {}
        for name, entry in data.get("models", {}).items():
            try:
                models[name] = RegistryEntry.from_dict(name, entry)
            except (ValueError, TypeError) as exc:
                raise WeightsError(f"{path}: model {name!r}: {exc}") from exc
            models[name].folder, models[name].origin = folder, origin
        return cls(data.get("default"), models, folder)

    def save(self) -> None:
        """Write this folder's registry.json (atomically): the entries that belong to this folder."""
        own = {n: e for n, e in self.models.items() if e.folder in (None, self.folder)}
        data = {"default": self.default, "models": {n: e.to_dict() for n, e in sorted(own.items())}}
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.folder / REGISTRY_FILE, (json.dumps(data, indent=2) + "\n").encode())

    def get(self, name: str | None) -> RegistryEntry:
        if name is None:
            if not self.default:
                raise WeightsError(
                    "no model is installed yet: pass --weights PATH (a .safetensors model file) or --model NAME "
                    "(see `swintormer weights list`)"
                )
            name = self.default
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise WeightsError(f"unknown model {name!r} (registered: {known})")
        return self.models[name]


DEFAULT_ESTIMATOR = "blur-estimator"
"""The blur estimator a model without one of its own (and a ``--weights`` file) chooses its scales with."""
ESTIMATOR_KIND = "blur-estimator"


@dataclass
class ResolvedModel:
    path: Path
    name: str
    origin: str
    """``file`` (--weights), ``embedded``, ``user`` (the user's weights folder) or ``hub`` (cache or Hub)."""
    entry: RegistryEntry | None = None
    sha256: str | None = None

    def load(self) -> ModelBundle:
        try:
            bundle = load_model(self.path)
        except CheckpointError as exc:
            raise WeightsError(str(exc)) from exc
        if self.entry is not None:
            if self.entry.window and not bundle.training.get("window"):
                bundle.training["window"] = self.entry.window
            bundle.source = self.name
        named = self.entry.estimator if self.entry is not None else None
        bundle.estimator = resolve_estimator(named, required=named is not None)
        return bundle


def _local_file(path: Path) -> Path:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(f"{path}: only .safetensors model files are loaded (pickle files can run code)")
    if path.is_dir():
        for candidate in ("ema.safetensors", "model.safetensors"):
            if (path / candidate).is_file():
                return path / candidate
        found = sorted(path.glob("*.safetensors"))
        if len(found) == 1:
            return found[0]
        if not found:
            raise WeightsError(f"{path}: no .safetensors file in this folder")
        raise WeightsError(f"{path}: several .safetensors files here; name one")
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if path.suffix.lower() != ".safetensors":
        raise WeightsError(f"{path}: not a .safetensors file")
    return path


_SHA256 = re.compile(r"[0-9a-f]{64}")


def verify_file(path: Path, entry: RegistryEntry, where: str) -> str:
    """The file's sha256, after checking it against the registry's; an entry without a well-formed sha256
    is refused (a registered file is never loaded unchecked)."""
    if not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256.lower()):
        raise WeightsError(
            f"model {entry.name!r}: its registry entry has no valid sha256 ({entry.sha256!r}), so {path} cannot "
            "be checked; refusing to load it (re-export it, or pass the file with --weights)"
        )
    digest = sha256_of(path)
    if digest != entry.sha256.lower():
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}... does not match the registry's {entry.sha256[:12]}... for "
            f"{entry.name} ({where}); refusing to load it"
        )
    return digest


def hub_download(entry: RegistryEntry, local_only: bool = False) -> Path:
    """Fetch a registered file through the Hugging Face cache, with one-line errors."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub = entry.hub or {}
    repo, revision = hub.get("repo_id"), hub.get("revision")
    filename = hub.get("filename", entry.file)
    if not repo:
        raise WeightsError(
            f"model {entry.name!r} is not published on the Hub and its file {entry.file} is not installed"
        )
    where = f"{repo}@{(revision or 'main')[:12]}/{filename}"
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=local_only))
    except LocalEntryNotFoundError as exc:  # before its base class EntryNotFoundError
        if offline or local_only:
            raise WeightsError(
                f"model {entry.name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: unset it and "
                f"run `swintormer weights download {entry.name}` once, or pass --weights PATH"
            ) from exc
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        raise WeightsError(
            f"model {entry.name!r}: cannot reach the Hub at {endpoint} to fetch {where}, and it is not cached; "
            "check the network or HF_ENDPOINT, or pass --weights PATH"
        ) from exc
    except (EntryNotFoundError, RevisionNotFoundError, RepositoryNotFoundError) as exc:
        raise WeightsError(f"model {entry.name!r}: {where} not found on the Hub ({type(exc).__name__})") from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise WeightsError(f"model {entry.name!r}: the Hub answered {status or 'an error'} for {where}") from exc
    except OSError as exc:
        raise WeightsError(f"model {entry.name!r}: cannot fetch {where} ({exc})") from exc


def resolve_model(
    model: str | None = None, weights: str | Path | None = None, registry: Registry | None = None
) -> ResolvedModel:
    """Find the weights to load, per the resolution order in this module's docstring."""
    if weights:
        path = _local_file(Path(weights).expanduser())
        return ResolvedModel(path, path.stem if path.stem not in ("ema", "model") else path.parent.name, "file")
    registry = registry or Registry.load()
    entry = registry.get(model)
    if entry.kind == ESTIMATOR_KIND:
        raise WeightsError(f"{entry.name!r} is a blur estimator, not a deblurring model")
    return _resolve_entry(entry, registry)


def _resolve_entry(entry: RegistryEntry, registry: Registry) -> ResolvedModel:
    local = entry.local_path or registry.folder / entry.file
    if local.is_file():
        return ResolvedModel(local, entry.name, entry.origin, entry, verify_file(local, entry, entry.origin))
    path = hub_download(entry)
    return ResolvedModel(path, entry.name, "hub", entry, verify_file(path, entry, "Hugging Face cache"))


def resolve_estimator(name: str | None = None, registry: Registry | None = None, required: bool = True):
    """The registered blur estimator ``name`` (default ``DEFAULT_ESTIMATOR``), loaded and checked; None when it is
    not registered and not ``required`` (images are then restored at their own size). A registered one that
    cannot be had or fails its check is an error either way."""
    from .models.blur_estimator import load_estimator

    registry = registry or Registry.load()
    name = name or DEFAULT_ESTIMATOR
    entry = registry.models.get(name)
    if entry is None or entry.kind != ESTIMATOR_KIND:
        if not required:
            return None
        raise WeightsError(f"blur estimator {name!r} is not registered (see `swintormer weights list`)")
    resolved = _resolve_entry(entry, registry)
    try:
        return load_estimator(resolved.path)
    except ValueError as exc:
        raise WeightsError(str(exc)) from exc


def cached_path(entry: RegistryEntry) -> Path | None:
    """The file in the Hugging Face cache, without touching the network, or None."""
    if not (entry.hub or {}).get("repo_id"):
        return None
    try:
        return hub_download(entry, local_only=True)
    except WeightsError:
        return None
