"""A PEP 517 build backend with no dependencies, for the corral SDK.

pip runs it in place of setuptools (pyproject.toml names it, with
`backend-path = ["_build"]` and `requires = []`), so `pip install
./sdk/python` needs no package index: nothing has to be downloaded to
build.  It knows just enough to package this project: the pure-Python
packages listed in PACKAGES, the metadata from pyproject.toml's [project]
table, and the README as the long description.

Hooks: build_wheel, build_sdist, build_editable (a wheel holding a .pth
that points at this source tree), their prepare_metadata_* and
get_requires_for_build_* companions.
"""
import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("corral", "baponi")
SDIST_FILES = ("pyproject.toml", "README.md", "_build/corral_build.py")
# Reproducible archives: a fixed timestamp (1980-01-01, zip's epoch) unless
# SOURCE_DATE_EPOCH says otherwise.
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))


# --- metadata ----------------------------------------------------------------

def _project():
    """The [project] table's simple `key = "string"` entries.

    tomllib only exists from Python 3.11 on, so older interpreters get a
    line parser that understands what pyproject.toml here actually uses.
    """
    path = os.path.join(ROOT, "pyproject.toml")
    try:
        import tomllib
    except ImportError:
        tomllib = None
    if tomllib is not None:
        with open(path, "rb") as f:
            return tomllib.load(f)["project"]
    out, section = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]").strip()
                continue
            m = re.match(r'([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"\s*$', line)
            if section == "project" and m:
                out[m.group(1)] = m.group(2)
    return out


def _name_version():
    p = _project()
    name, version = p["name"], p["version"]
    # The package's own __version__ must agree: one release, one number.
    with open(os.path.join(ROOT, "corral", "__init__.py"), encoding="utf-8") as f:
        m = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    if not m or m.group(1) != version:
        raise RuntimeError("corral/__init__.py __version__ %r differs from pyproject.toml's %r"
                           % (m and m.group(1), version))
    return re.sub(r"[-_.]+", "_", name).lower(), version, p


def _metadata():
    name, version, p = _name_version()
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % p["name"],
        "Version: %s" % version,
    ]
    if p.get("description"):
        lines.append("Summary: %s" % p["description"])
    if p.get("requires-python"):
        lines.append("Requires-Python: %s" % p["requires-python"])
    lic = p.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append("License: %s" % lic["text"])
    readme = os.path.join(ROOT, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    return ("\n".join(lines) + "\n\n" + body).encode("utf-8")


def _dist_info_files(tag="py3-none-any"):
    name, version, _ = _name_version()
    wheel = ("Wheel-Version: 1.0\nGenerator: corral_build\nRoot-Is-Purelib: true\n"
             "Tag: %s\n" % tag).encode()
    top = "".join(p + "\n" for p in PACKAGES).encode()
    return {"METADATA": _metadata(), "WHEEL": wheel, "top_level.txt": top}


# --- wheels --------------------------------------------------------------------

def _package_files():
    """(archive path, file path) for every source file of PACKAGES."""
    out = []
    for pkg in PACKAGES:
        base = os.path.join(ROOT, pkg)
        for d, dirs, files in os.walk(base):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            for f in sorted(files):
                if f.endswith((".pyc", ".pyo")):
                    continue
                full = os.path.join(d, f)
                out.append((os.path.relpath(full, ROOT).replace(os.sep, "/"), full))
    return out


def _record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _zipinfo(arcname, mode=0o644):
    zi = zipfile.ZipInfo(arcname, time.gmtime(max(EPOCH, 315532800))[:6])
    zi.external_attr = (0o100000 | mode) << 16
    zi.compress_type = zipfile.ZIP_DEFLATED
    return zi


def _write_wheel(wheel_directory, entries):
    """entries: list of (archive path, bytes).  Adds the dist-info and RECORD."""
    name, version, _ = _name_version()
    dist_info = "%s-%s.dist-info" % (name, version)
    entries = list(entries) + [(dist_info + "/" + k, v) for k, v in
                               sorted(_dist_info_files().items())]
    filename = "%s-%s-py3-none-any.whl" % (name, version)
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        for arc, data in entries:
            z.writestr(_zipinfo(arc), data)
            record.append("%s,%s,%d" % (arc, _record_hash(data), len(data)))
        record.append(dist_info + "/RECORD,,")
        z.writestr(_zipinfo(dist_info + "/RECORD"), "\n".join(record) + "\n")
    return filename


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    entries = []
    for arc, full in _package_files():
        with open(full, "rb") as f:
            entries.append((arc, f.read()))
    return _write_wheel(wheel_directory, entries)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth line puts this source tree on sys.path: edits show at once.
    pth = (ROOT + "\n").encode("utf-8")
    return _write_wheel(wheel_directory, [("__editable__.corral.pth", pth)])


def _prepare_metadata(metadata_directory):
    name, version, _ = _name_version()
    dist_info = "%s-%s.dist-info" % (name, version)
    path = os.path.join(metadata_directory, dist_info)
    os.makedirs(path, exist_ok=True)
    for k, v in _dist_info_files().items():
        with open(os.path.join(path, k), "wb") as f:
            f.write(v)
    return dist_info


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _prepare_metadata(metadata_directory)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _prepare_metadata(metadata_directory)


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


# --- sdist ---------------------------------------------------------------------

def build_sdist(sdist_directory, config_settings=None):
    name, version, _ = _name_version()
    base = "%s-%s" % (name, version)
    filename = base + ".tar.gz"
    files = [(f, os.path.join(ROOT, f)) for f in SDIST_FILES] + _package_files()

    def add(tar, arc, data):
        ti = tarfile.TarInfo(base + "/" + arc)
        ti.size, ti.mtime, ti.mode = len(data), EPOCH, 0o644
        tar.addfile(ti, io.BytesIO(data))

    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for arc, full in files:
            with open(full, "rb") as f:
                add(tar, arc, f.read())
        add(tar, "PKG-INFO", _metadata())
    return filename
