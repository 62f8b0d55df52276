"""Fetching the published GOZ assets into GOZ_HOME: features, splits, GloVe, the ImageNet URL list.

Each asset is downloaded (resumable, checked) or installed from a local copy (`source`) with
the same checks, and only then put where the other stages look for it by default.
"""

from __future__ import annotations

import logging
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urljoin

import httpx

from goz import catalog
from goz.assets.http import FileCheck, PageHandler, fetch_file, install_file
from goz.catalog import (
    FEATURE_STORES,
    FEATURES_FOLDER,
    GLOVE_FOLDER,
    GLOVE_MEMBERS,
    GLOVE_URL,
    IMAGENET_FOLDER,
    IMAGENET_URLS_MEMBER,
    IMAGENET_URLS_URL,
    PUBLISHED_FOLDER,
)
from goz.errors import FetchError, GozError, StoreError
from goz.home import atomic_path, data_home, file_lock, sha256_of
from goz.names import URL_LINE_KEY
from goz.progress import progress_bar
from goz.store import FeatureStore, check_wnid

log = logging.getLogger(__name__)

DRIVE_DOWNLOAD_URL = "https://drive.usercontent.google.com/download"  # GOZ_DRIVE_URL overrides it


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its address, where it goes under GOZ_HOME, and how it is checked."""

    url: str | Callable[[], str]  # a callable is resolved at fetch time (configurable base URL)
    relative_path: str
    sha256: str | None = None
    check: FileCheck | None = None
    page: PageHandler | None = None
    source_names: tuple[str, ...] = ()  # what the file may be called in a `--from` directory

    @property
    def address(self) -> str:
        return self.url() if callable(self.url) else self.url


@dataclass(frozen=True)
class FetchableAsset:
    """A name of `goz fetch`: what it is, and the function that fetches or installs it."""

    description: str
    obtain: Callable[[Path, Path | None, bool, bool, bool], list[Path]]  # (home, source, force, check_values, progress)


def fetch(name: str, *, source: str | Path | None = None, force: bool = False,
          check_values: bool = False, home: str | Path | None = None, progress: bool = True) -> list[Path]:
    """Fetch the asset `name` (see ASSETS) into `home` (default GOZ_HOME); returns the installed paths.

    `source`: a local copy (file or directory) installed instead of downloading, checked the same
    way. `force`: fetch again even if installed (an interrupted download still resumes).
    `check_values`: for features, also read every value (NaN/inf, duplicate ids) before
    installing. Raises FetchError saying what failed and what to do next.
    """
    if name not in ASSETS:
        raise FetchError(f"unknown asset {name!r}; one of: {', '.join(ASSETS)}")
    home = Path(home).expanduser() if home is not None else data_home()
    if source is not None:
        source = Path(source).expanduser()
        if not source.exists():
            raise FetchError(f"--from {source}: no such file or directory")
    return ASSETS[name].obtain(home, source, force, check_values, progress)


def _obtain_files(name: str, files: tuple[RemoteFile, ...], home: Path, source: Path | None, force: bool,
                  hint: str | None = None, progress: bool = True) -> list[Path]:
    """Each file downloaded into `home`, or all of them installed from the local copy `source`."""
    if source is not None:
        return _install_copies(name, files, source, home, progress)
    hint = hint or f"Offline, or the file is gone? Install a copy you have with `goz fetch {name} --from PATH`"
    paths = []
    for remote in files:
        address = remote.address
        log.info("fetching %s from %s", remote.relative_path, address)
        paths.append(fetch_file(address, home / remote.relative_path, remote.sha256, check=remote.check,
                                page=remote.page, force=force, hint=hint, progress=progress))
    return paths


def _install_copies(name: str, files: tuple[RemoteFile, ...], source: Path, home: Path,
                    progress: bool = True) -> list[Path]:
    """`--from`: a file (matched by name or checksum when several files exist) or a directory."""
    if source.is_file():
        if len(files) == 1:
            matched = [(files[0], source)]
        else:
            matched = [(f, source) for f in files if _names_match(f, source)]
        if not matched:
            raise FetchError(f"--from {source}: not one of the files of `goz fetch {name}` "
                             f"(expected a file named {_expected_names(files)}"
                             f"{' or with the published checksum' if any(f.sha256 for f in files) else ''})")
    else:
        matched = [(f, found) for f in files if (found := _find_in_directory(f, source)) is not None]
        if not matched:
            raise FetchError(f"--from {source}: no file of `goz fetch {name}` in this directory "
                             f"(looked for {_expected_names(files)})")
        missing = [f.relative_path for f in files if f not in {m[0] for m in matched}]
        if missing:
            log.warning("--from %s: not found there, not installed: %s", source, ", ".join(missing))
    for remote, path in matched:  # every copy checked before any is installed: one refused installs none
        if remote.check is not None:
            try:
                remote.check(path)
            except GozError as error:
                raise FetchError(f"{path} was not installed: {error}; nothing was installed") from None
    return [install_file(path, home / remote.relative_path, remote.sha256, progress=progress)
            for remote, path in matched]


def _candidate_names(remote: RemoteFile) -> tuple[str, ...]:
    return (Path(remote.relative_path).name, *remote.source_names)


def _expected_names(files: tuple[RemoteFile, ...]) -> str:
    return " or ".join(dict.fromkeys(name for f in files for name in _candidate_names(f)))


def _names_match(remote: RemoteFile, path: Path) -> bool:
    return path.name in _candidate_names(remote) or (remote.sha256 is not None and sha256_of(path) == remote.sha256)


def _find_in_directory(remote: RemoteFile, directory: Path) -> Path | None:
    return next((directory / name for name in _candidate_names(remote) if (directory / name).is_file()), None)


# -- features (Google Drive) ---------------------------------------------------------------------------

def drive_url(file_id: str) -> Callable[[], str]:
    """The download address of a public Google Drive file (base from GOZ_DRIVE_URL if set)."""
    query = urlencode({"id": file_id, "export": "download"})
    return lambda: f"{os.environ.get('GOZ_DRIVE_URL') or DRIVE_DOWNLOAD_URL}?{query}"


class _DrivePageParser(HTMLParser):
    """Collects the download form (action, hidden inputs), `confirm=` links and Drive's error text."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.confirm_links: list[str] = []
        self.error_text: list[str] = []
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.forms.append((attributes.get("action", ""), {}))
        elif tag == "input" and self.forms and attributes.get("type", "").lower() == "hidden":
            if attributes.get("name"):
                self.forms[-1][1][attributes["name"]] = attributes.get("value", "")
        elif tag == "a" and "confirm=" in attributes.get("href", ""):
            self.confirm_links.append(attributes["href"])
        self._in_error = "uc-error" in attributes.get("class", "") or self._in_error

    def handle_endtag(self, tag: str) -> None:
        if tag in {"p", "div"}:
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error and data.strip():
            self.error_text.append(data.strip())


def drive_confirmation(response: httpx.Response, page: str) -> str | None:
    """The URL that confirms a Drive download, from its HTML page; FetchError if the page is an error.

    Drive answers large files with a "can't scan this file for viruses" page: a form whose
    action and hidden inputs (id, export, confirm, uuid) make the real download request. Older
    pages set a `download_warning_*` cookie, or link to `...&confirm=TOKEN`, instead.
    """
    parser = _DrivePageParser()
    parser.feed(page)
    for action, inputs in parser.forms:
        if "id" in inputs or "confirm" in inputs:
            return str(httpx.URL(urljoin(str(response.url), action)).copy_merge_params(inputs))
    for name, value in response.cookies.items():
        if name.startswith("download_warning"):
            return str(response.url.copy_merge_params({"confirm": value}))
    if parser.confirm_links:
        return urljoin(str(response.url), parser.confirm_links[0])  # HTMLParser already unescaped it
    reason = " ".join(parser.error_text)
    if reason:
        raise FetchError(f"Google Drive refused the download: {reason}")
    return None


def check_feature_layout(path: Path, *, check_values: bool = False) -> None:
    """The GOZ HDF5 layout: images/ and idx/ groups, every class a wnid with matching (N, D) and (N,)."""
    try:
        with FeatureStore(path) as store:
            if store.is_synthetic:
                raise StoreError(f"{path} is SYNTHETIC demo data (written by goz.synthetic: attribute data = "
                                 f"synthetic), not the published GOZ features; give the real files")
            links = store.links()
            if links:
                raise StoreError(f"{path}: {len(links)} groups or datasets are HDF5 soft or external links "
                                 f"(e.g. {links[0]}): the values are not in this file")
            if not store.classes:
                raise StoreError(f"{path}: the store holds no class")
            for wnid in store.classes:
                check_wnid(wnid, f"{path}: ")
                store.count(wnid)
            if check_values:
                store.validate()
    except (OSError, RuntimeError, KeyError, ValueError) as error:  # h5py's errors on damaged internals
        raise StoreError(f"{path}: damaged HDF5 file ({error})") from None


def _obtain_features(home: Path, source: Path | None, force: bool, check_values: bool,
                    progress: bool) -> list[Path]:
    def check(path: Path) -> None:
        check_feature_layout(path, check_values=check_values)
    files = tuple(
        RemoteFile(drive_url(drive_id), f"{FEATURES_FOLDER}/{name}", check=check, page=drive_confirmation,
                   source_names=(seed_name,))
        for name, (drive_id, seed_name) in FEATURE_STORES.items())
    return _obtain_files("features", files, home, source, force, progress=progress)


# -- splits ----------------------------------------------------------------------------------------------

def _obtain_splits(home: Path, source: Path | None, force: bool, check_values: bool,
                    progress: bool) -> list[Path]:
    files = tuple(
        RemoteFile(asset.url, asset.relative_path, asset.sha256, page=refuse_page,
                   source_names=(asset.url.rsplit("/", 1)[-1],))
        for asset in catalog.SPLIT_ASSETS.values())  # the ImageNet test sets ship with goz
    return _obtain_files("splits", files, home, source, force, progress=progress)


def refuse_page(response: httpx.Response, page: str) -> None:
    """For files that are never HTML: an HTML answer (login wall, error page) is an error."""
    return None


# -- GloVe -----------------------------------------------------------------------------------------------

def check_zip(path: Path, members: tuple[str, ...], progress: bool = True) -> None:
    """A complete zip holding `members`, every member's CRC read and checked (with progress)."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = sorted(set(members) - set(archive.namelist()))
            if missing:
                raise FetchError(f"{path}: the zip lacks {', '.join(missing)}")
            # ZipFile.testzip does the same reading without progress; a 1 GB zip takes a while.
            infos = archive.infolist()
            with progress_bar(total=sum(i.file_size for i in infos), unit="B", unit_scale=True, unit_divisor=1024,
                              desc=f"check {path.name.removesuffix('.part')}", enabled=progress) as bar:
                for info in infos:
                    with archive.open(info) as member:
                        for block in iter(lambda: member.read(1 << 20), b""):
                            bar.update(len(block))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise FetchError(f"{path}: not a complete zip file ({error})") from None


def _glove_asset(name: str) -> FetchableAsset:
    def obtain(home: Path, source: Path | None, force: bool, check_values: bool,
                    progress: bool) -> list[Path]:
        remote = RemoteFile(GLOVE_URL.format(name=name), f"{GLOVE_FOLDER}/{name}.zip",
                            check=lambda path: check_zip(path, GLOVE_MEMBERS[name], progress), page=refuse_page)
        return _obtain_files(f"glove --name {name}", (remote,), home, source, force, progress=progress)
    return FetchableAsset(f"GloVe word vectors {name} (zip, every member checked)", obtain)


# -- ImageNet fall-2011 URL list ---------------------------------------------------------------------------

IMAGENET_URLS_HINT = (
    "The ImageNet fall-2011 URL list may no longer be published at this address. If you have a copy "
    "(imagenet_fall11_urls.tgz or fall11_urls.txt), install it with `goz fetch imagenet-urls --from PATH`, "
    "or give the text file directly to `goz download FILE OUT`"
)


def check_url_list(path: Path, lines: int = 100) -> None:
    """The first `lines` non-empty lines read `<wnid>_<image id><TAB><url>` (bytes: some are not UTF-8)."""
    found = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number > lines:
                break
            if line.strip() and not URL_LINE_KEY.match(line):
                raise FetchError(f"{path}: line {number} is not `<wnid>_<id><TAB><url>`: {line[:80]!r}")
            found += bool(line.strip())
    if not found:
        raise FetchError(f"{path}: empty, not a URL list")


def extract_url_list(archive: Path, destination: Path, progress: bool = True) -> Path:
    """Extracts fall11_urls.txt from the .tgz (that one member, streamed, atomically); FetchError if corrupt."""
    with file_lock(destination), atomic_path(destination) as temporary:
        try:
            with tarfile.open(archive, "r:*") as tar:
                member = next((m for m in tar if Path(m.name).name == IMAGENET_URLS_MEMBER and m.isfile()), None)
                if member is None:
                    raise FetchError(f"no {IMAGENET_URLS_MEMBER} in this archive")
                with tar.extractfile(member) as reader, open(temporary, "wb") as writer, progress_bar(
                    total=member.size, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=f"extract {destination.name}", enabled=progress,
                ) as bar:
                    for block in iter(lambda: reader.read(1 << 20), b""):
                        writer.write(block)
                        bar.update(len(block))
            check_url_list(temporary)
        except (tarfile.TarError, zlib.error, EOFError, OSError, FetchError) as error:
            raise FetchError(f"{archive}: could not extract {IMAGENET_URLS_MEMBER} ({error})") from None
    return destination


def _obtain_imagenet_urls(home: Path, source: Path | None, force: bool, check_values: bool,
                    progress: bool) -> list[Path]:
    listing = home / IMAGENET_FOLDER / IMAGENET_URLS_MEMBER
    if source is not None:
        return [_install_url_list(source, listing, progress)]
    if listing.exists() and not force:
        return [listing]
    remote = RemoteFile(IMAGENET_URLS_URL, f"{IMAGENET_FOLDER}/imagenet_fall11_urls.tgz", page=refuse_page)
    (archive,) = _obtain_files("imagenet-urls", (remote,), home, None, force, hint=IMAGENET_URLS_HINT,
                               progress=progress)
    try:
        extract_url_list(archive, listing, progress)
    except FetchError as error:
        archive.unlink()  # corrupt: a rerun downloads it again
        raise FetchError(f"{error}; the archive was removed, rerun to download it again") from None
    archive.unlink()  # the 350 MB archive is no longer needed once its one file is out
    return [listing]


def _install_url_list(source: Path, listing: Path, progress: bool = True) -> Path:
    """`--from`: the .tgz (extracted), fall11_urls.txt itself (checked, copied), or a directory holding either."""
    if source.is_dir():
        found = next((source / name for name in ("imagenet_fall11_urls.tgz", IMAGENET_URLS_MEMBER)
                      if (source / name).is_file()), None)
        if found is None:
            raise FetchError(f"--from {source}: neither imagenet_fall11_urls.tgz nor {IMAGENET_URLS_MEMBER} in it")
        source = found
    listing.parent.mkdir(parents=True, exist_ok=True)
    if tarfile.is_tarfile(source):
        return extract_url_list(source, listing, progress)
    return install_file(source, listing, check=check_url_list, progress=progress)


# -- the original benchmark's class vectors and graph classifiers -------------------------------------------

def _obtain_published(home: Path, source: Path | None, force: bool, check_values: bool,
                    progress: bool) -> list[Path]:
    """The four published pickles (checked by git blob id) into published/original/, then converted."""
    from goz.assets import (
        published,  # deferred: pandas is optional and only this asset needs it
    )
    folder = home / PUBLISHED_FOLDER
    tables = list(catalog.PUBLISHED_TABLES.values())
    files = tuple(
        RemoteFile(table.url, f"{PUBLISHED_FOLDER}/original/{table.name}",
                   check=lambda path, blob=table.git_blob_id: published.check_blob_id(path, blob), page=refuse_page,
                   source_names=(table.repository_path,))  # `--from` a clone of the GOZ repository works too
        for table in tables)
    published._pandas_compat_unpickler()  # pandas missing: say so before downloading anything
    originals = _obtain_files("published", files, home, source, force, progress=progress)
    by_path = {home / remote.relative_path: table for remote, table in zip(files, tables)}
    converted = []
    for original in originals:
        table = by_path[original]
        try:
            converted.append(published.convert(table, original, folder / f"{table.name}.h5"))
        except GozError as error:
            raise FetchError(f"{error}; nothing was converted from it") from None
    return converted


# -- the table -----------------------------------------------------------------------------------------------

ASSETS: dict[str, FetchableAsset] = {
    "features": FetchableAsset("GOZ ResNet-50 features (train and test HDF5 stores, Google Drive)", _obtain_features),
    "splits": FetchableAsset("built-in splits (goz_v1, ilsvrc2012), checked by sha256", _obtain_splits),
    **{name: _glove_asset(name) for name in GLOVE_MEMBERS},
    "imagenet-urls": FetchableAsset("ImageNet fall-2011 image URL list (fall11_urls.txt)", _obtain_imagenet_urls),
    "published": FetchableAsset("the original benchmark's class vectors (glove) and graph classifiers "
                                "(gcn_6, gcn_2, adgpm), checked by git blob id, converted", _obtain_published),
}
ASSETS["glove"] = ASSETS["glove.6B"]
